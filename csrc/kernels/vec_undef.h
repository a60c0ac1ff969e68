/* vec_undef.h: forget one dtype's vector vocabulary (see gemm_vec_template.h) before an ISA
 * file defines the next. */
#undef OXO_T
#undef OXO_V
#undef OXO_L
#undef OXO_M
#undef OXO_MASK
#undef OXO_MASKBITS
#undef OXO_LOAD
#undef OXO_LOADM
#undef OXO_LOADA
#undef OXO_FV_STORE
#undef OXO_TSTORE
#undef OXO_STORE
#undef OXO_STOREM
#undef OXO_SET1
#undef OXO_ZERO
#undef OXO_FMA
#undef OXO_ADD
#undef OXO_MAX
#undef OXO_MIN
#undef OXO_HSUM
#undef OXO_NAME
#undef OXO_REDUCE16
