/* direct-scalar.c: the portable direct-convolution micro-kernels, f32 and f64, for every CPU
 * without AVX2 (and aarch64, where the compiler may vectorize them itself).
 *
 * Computes: the tile of oxo_direct_tile (onexone.h): y = act(W * X + bias) for m <= 4 output
 *           channels x nv <= 8 output pixels, the whole reduction in registers.
 * Layout:   NCHW input read in place through the per-tap offsets; one "vector" is one lane.
 * Tile:     4 x 8, from direct_vec_template.h instantiated with one-lane vectors, so the loop
 *           structure and the reduction order are those of the vector ISAs.
 * ISA:      plain C; fused multiply-add where the target has one (as gemm-scalar.c).
 * Edges:    a lane's mask bit selects its load (x or 0) and its store.
 */
#include <math.h>
#include "../kernel_common.h"

#define OXO_UNROLL_K _Pragma("GCC unroll 1")
#define OXO_DIRECT_MR 4
#define OXO_DIRECT_NV 8

#define OXO_L 1
#define OXO_M uint32_t
#define OXO_MASKBITS(b) ((uint32_t)(b))
#define OXO_LOAD(p) (*(p))
#define OXO_LOADM(m, p) ((m) ? *(p) : (OXO_T)0)
#define OXO_STORE(p, v) (*(p) = (v))
#define OXO_STOREM(p, m, v) ((m) ? (void)(*(p) = (v)) : (void)0)
#define OXO_SET1(x) (x)
#define OXO_ZERO() ((OXO_T)0)
#define OXO_ADD(a, b) ((a) + (b))
/* x86 semantics: the second operand when either is NaN, so max(0, NaN) is NaN */
#define OXO_MAX(a, b) ((a) > (b) ? (a) : (b))
#define OXO_MIN(a, b) ((a) < (b) ? (a) : (b))

/* ---- f32 ---- */
#define OXO_T float
#define OXO_V float
#if defined(FP_FAST_FMAF)
#define OXO_FMA(a, b, c) fmaf(a, b, c)
#else
#define OXO_FMA(a, b, c) ((a) * (b) + (c))
#endif
#define OXO_NAME(x) oxo_f32_##x##__scalar
#include "../vec_activate.h"
#include "../direct_vec_template.h"
#include "../dw_vec_template.h"
#undef OXO_T
#undef OXO_V
#undef OXO_FMA
#undef OXO_NAME

/* ---- f64 ---- */
#define OXO_T double
#define OXO_V double
#if defined(FP_FAST_FMA)
#define OXO_FMA(a, b, c) fma(a, b, c)
#else
#define OXO_FMA(a, b, c) ((a) * (b) + (c))
#endif
#define OXO_NAME(x) oxo_f64_##x##__scalar
#include "../vec_activate.h"
#include "../direct_vec_template.h"
#include "../dw_vec_template.h"
