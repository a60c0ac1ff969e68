/* vec_activate.h: ReLU / ReLU6 on one vector of the including file's vocabulary (see
 * gemm_vec_template.h); included once per dtype and ISA, by gemm_vec_template.h or, where
 * that is not used, by the file itself before direct_vec_template.h. */
static inline OXO_V OXO_NAME(activate)(OXO_V r, int act)
{
    /* max(0, r) with 0 first: x86 max returns the second operand when either is NaN,
     * so NaN propagates as in np.maximum. */
    if (act == OXO_ACT_RELU) {
        r = OXO_MAX(OXO_ZERO(), r);
    } else if (act == OXO_ACT_RELU6) {
        r = OXO_MIN(OXO_SET1((OXO_T)6), OXO_MAX(OXO_ZERO(), r));
    }
    return r;
}
