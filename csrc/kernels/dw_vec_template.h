/* dw_vec_template.h: the depthwise convolution's micro-kernel (one input channel per group),
 * written once for every ISA and dtype (see oxo_dw_tile in onexone.h; the driver is
 * oxo_conv2d_depthwise_nchw in csrc/conv/conv2d_grouped.c).
 *
 * Computes: rows x wo outputs of one output channel, y = act(sum_t w[t] * X_t + bias), where
 *           tap t reads the input at src + tap_off[t] + r*row_step + u for output (r, u): a
 *           zero-padded, column-phase-split copy of one input channel, so every tap is one
 *           (masked) vector load along the output row.
 * Loops:    the (row, vector) items of the tile four at a time (four independent FMA chains,
 *           which a 7x7 map's single vector per row would not give; a last group of fewer
 *           repeats its last item); the row's last vector is masked.
 * Order:    one FMA chain per output over the taps in order, then the bias: the same for
 *           every tile, thread and vector width.
 *
 * The including file defines the vocabulary of direct_vec_template.h (OXO_T, OXO_V, OXO_L,
 * OXO_M, OXO_MASKBITS, OXO_LOAD, OXO_LOADM, OXO_STORE, OXO_STOREM, OXO_SET1, OXO_ZERO,
 * OXO_FMA, OXO_ADD, OXO_NAME, and OXO_NAME(activate)). */

void OXO_NAME(dw)(const oxo_dw_tile *t)
{
    const OXO_T *src = (const OXO_T *)t->src, *w = (const OXO_T *)t->w;
    OXO_T *y = (OXO_T *)t->y;
    const size_t wo = t->wo, taps = t->taps, nvec = (wo + OXO_L - 1) / OXO_L, items = t->rows * nvec;
    const ptrdiff_t *off = t->tap_off;
    const OXO_V bias = OXO_SET1(t->bias ? *(const OXO_T *)t->bias : (OXO_T)0);
    const OXO_M full = OXO_MASKBITS((1u << (OXO_L - 1) << 1) - 1);
    const OXO_M last = wo % OXO_L ? OXO_MASKBITS((1u << (wo % OXO_L)) - 1) : full;
    size_t r = 0, v = 0; /* the next item (row, vector) */
    for (size_t it = 0; it < items; it += 4) {
        const OXO_T *s[4];
        OXO_T *d[4];
        OXO_M m[4];
        OXO_V acc[4];
        int whole = 1; /* all four vectors whole: plain loads */
        for (int k = 0; k < 4; k++) { /* past the last item: the last again (same value stored) */
            s[k] = src + (ptrdiff_t)r * t->row_step + (ptrdiff_t)(v * OXO_L);
            d[k] = y + r * wo + v * OXO_L;
            m[k] = v + 1 == nvec ? last : full;
            whole &= v + 1 < nvec || wo % OXO_L == 0;
            acc[k] = OXO_ZERO();
            if (it + (size_t)k + 1 < items && ++v == nvec) {
                v = 0;
                r++;
            }
        }
        if (whole) {
            for (size_t q = 0; q < taps; q++) {
                const OXO_V wq = OXO_SET1(w[q]);
                for (int k = 0; k < 4; k++) acc[k] = OXO_FMA(wq, OXO_LOAD(s[k] + off[q]), acc[k]);
            }
        } else {
            for (size_t q = 0; q < taps; q++) {
                const OXO_V wq = OXO_SET1(w[q]);
                for (int k = 0; k < 4; k++) acc[k] = OXO_FMA(wq, OXO_LOADM(m[k], s[k] + off[q]), acc[k]);
            }
        }
        for (int k = 0; k < 4; k++) OXO_STOREM(d[k], m[k], OXO_NAME(activate)(OXO_ADD(acc[k], bias), t->act));
    }
}
