/* direct_fv_template.h: the direct-convolution micro-kernel vectorized along output channels
 * (see oxo_direct_fv_tile in onexone.h; the driver is csrc/conv/conv2d.c).
 *
 * Computes: np consecutive output pixels of one output row x OXO_FV_NV vectors of output
 *           channels, y = act(W * X + bias), through the whole reduction in registers.
 * Layout:   the input is the driver's zero-padded stride-phase copy, where the convolution
 *           has stride 1 and no padding. The taps come in runs of R that read consecutive
 *           columns (a 3x3 kernel at stride 1: 3 runs of 3): pixel p's input for channel c
 *           and tap t of run r is x[c*cs_x + run_off[r] + t + p], a scalar that is broadcast
 *           (no masks, no unaligned vectors). One broadcast of column j serves the run's R
 *           taps (pixels j - t), so a run costs np + R - 1 broadcasts, not np*R.
 *           The weights are packed per block of output channels, [c][run][t][vector lanes],
 *           zero past F: a run's weights are R*OXO_FV_NV aligned vector loads.
 *           Odd kernels at stride 2 alternate runs of two lengths, a kernel row's even
 *           columns then its odd ones (3x3: 2 and 1; 7x7: 4 and 3): direct_fv_pairs.
 * Tile:     np <= OXO_FV_NP pixels x OXO_FV_NV vectors; R <= 7 (R*OXO_FV_NV weight
 *           registers beside the accumulators).
 * Store:    the tile is pixels x channels in registers and channels x pixels in y (NCHW):
 *           OXO_FV_STORE(y, rs_y, m, acc, np) when the ISA file defines one (a transpose in
 *           registers), else through a buffer on the stack, one scalar per output element.
 * Order:    one FMA chain per output element in the order (channel, run, tap of the run),
 *           then the bias; the same for every tile, thread and ISA of this kernel.
 *
 * The including file defines the vocabulary of gemm_vec_template.h plus
 *   OXO_LOADA(p)          an aligned vector load (the packed weights)
 *   OXO_FV_NP, OXO_FV_NV  the tile
 */

/* Bias, activation and the store of a tile's accumulators. */
static inline __attribute__((always_inline)) void
OXO_NAME(direct_fv_finish)(const oxo_direct_fv_tile *t, OXO_V acc[OXO_FV_NP][OXO_FV_NV], const int NP)
{
    if (t->bias) {
        const OXO_T *bias = (const OXO_T *)t->bias;
        OXO_UNROLL for (int v = 0; v < OXO_FV_NV; v++) {
            const OXO_V bv = OXO_LOADA(bias + v * OXO_L);
            OXO_UNROLL for (int p = 0; p < NP; p++) acc[p][v] = OXO_ADD(acc[p][v], bv);
        }
    }
    if (t->act != OXO_ACT_NONE) {
        OXO_UNROLL for (int p = 0; p < NP; p++) {
            OXO_UNROLL for (int v = 0; v < OXO_FV_NV; v++) acc[p][v] = OXO_NAME(activate)(acc[p][v], t->act);
        }
    }
    /* pixels x channels -> channels x pixels */
    OXO_T *y = (OXO_T *)t->y;
    const ptrdiff_t rs_y = t->rs_y;
    const size_t m = t->m;
#ifdef OXO_FV_STORE
    OXO_FV_STORE(y, rs_y, m, acc, NP);
#else
    OXO_T buf[OXO_FV_NP][OXO_FV_NV * OXO_L] __attribute__((aligned(64)));
    OXO_UNROLL for (int p = 0; p < NP; p++) {
        OXO_UNROLL for (int v = 0; v < OXO_FV_NV; v++) OXO_STORE(buf[p] + v * OXO_L, acc[p][v]);
    }
    for (size_t i = 0; i < m; i++) {
        OXO_UNROLL for (int p = 0; p < NP; p++) y[(ptrdiff_t)i * rs_y + p] = buf[p][i];
    }
#endif
}

static inline __attribute__((always_inline)) void
OXO_NAME(direct_fv_tile)(const oxo_direct_fv_tile *t, const int NP, const int R)
{
    const OXO_T *x = (const OXO_T *)t->x;
    const OXO_T *w = (const OXO_T *)t->w;
    const ptrdiff_t cs_x = t->cs_x;
    const ptrdiff_t *run_off = t->run_off;
    const size_t C = t->c, runs = t->runs;

    OXO_V acc[OXO_FV_NP][OXO_FV_NV];
    OXO_UNROLL for (int p = 0; p < NP; p++) {
        OXO_UNROLL for (int v = 0; v < OXO_FV_NV; v++) acc[p][v] = OXO_ZERO();
    }
    for (size_t c = 0; c < C; c++) {
        const OXO_T *xc = x + (ptrdiff_t)c * cs_x;
        for (size_t r = 0; r < runs; r++) {
            const OXO_T *xr = xc + run_off[r];
            OXO_V wv[7][OXO_FV_NV];
            OXO_UNROLL for (int k = 0; k < R; k++) {
                OXO_UNROLL for (int v = 0; v < OXO_FV_NV; v++) wv[k][v] = OXO_LOADA(w + (k * OXO_FV_NV + v) * OXO_L);
            }
            w += R * OXO_FV_NV * OXO_L;
            /* column j feeds pixel j - k through tap k: taps in increasing order per pixel */
            OXO_UNROLL for (int j = 0; j < NP + R - 1; j++) {
                const OXO_V xb = OXO_SET1(xr[j]);
                OXO_UNROLL for (int k = 0; k < R; k++) {
                    const int p = j - k;
                    if (p < 0 || p >= NP) continue;
                    OXO_UNROLL for (int v = 0; v < OXO_FV_NV; v++) acc[p][v] = OXO_FMA(wv[k][v], xb, acc[p][v]);
                }
            }
        }
    }

    OXO_NAME(direct_fv_finish)(t, acc, NP);
}

/* The tile with runs that alternate between R and R2 taps (t->runs even): the same sums in
 * the same order as runs of 1. Functions of their own, not a branch of direct_fv_tile: with
 * both in one, GCC kept a pointer register per column in the uniform runs' loop and spilled
 * (r50.c3.3x3 0.8x on one thread). direct_fv_tile keeps its own copy of the run's loop:
 * calling direct_fv_run there changes its code too (a different disassembly). */
static inline __attribute__((always_inline)) const OXO_T *
OXO_NAME(direct_fv_run)(OXO_V acc[OXO_FV_NP][OXO_FV_NV], const OXO_T *xr, const OXO_T *w, const int NP, const int R)
{
    OXO_V wv[4][OXO_FV_NV];
    OXO_UNROLL for (int k = 0; k < R; k++) {
        OXO_UNROLL for (int v = 0; v < OXO_FV_NV; v++) wv[k][v] = OXO_LOADA(w + (k * OXO_FV_NV + v) * OXO_L);
    }
    OXO_UNROLL for (int j = 0; j < NP + R - 1; j++) {
        const OXO_V xb = OXO_SET1(xr[j]);
        OXO_UNROLL for (int k = 0; k < R; k++) {
            const int p = j - k;
            if (p < 0 || p >= NP) continue;
            OXO_UNROLL for (int v = 0; v < OXO_FV_NV; v++) acc[p][v] = OXO_FMA(wv[k][v], xb, acc[p][v]);
        }
    }
    return w + R * OXO_FV_NV * OXO_L;
}

static inline __attribute__((always_inline)) void
OXO_NAME(direct_fv_pair_tile)(const oxo_direct_fv_tile *t, const int NP, const int R, const int R2)
{
    const OXO_T *x = (const OXO_T *)t->x;
    const OXO_T *w = (const OXO_T *)t->w;
    const ptrdiff_t cs_x = t->cs_x;
    const ptrdiff_t *run_off = t->run_off;
    const size_t C = t->c, runs = t->runs;

    OXO_V acc[OXO_FV_NP][OXO_FV_NV];
    OXO_UNROLL for (int p = 0; p < NP; p++) {
        OXO_UNROLL for (int v = 0; v < OXO_FV_NV; v++) acc[p][v] = OXO_ZERO();
    }
    for (size_t c = 0; c < C; c++) {
        const OXO_T *xc = x + (ptrdiff_t)c * cs_x;
        for (size_t r = 0; r < runs; r += 2) {
            w = OXO_NAME(direct_fv_run)(acc, xc + run_off[r], w, NP, R);
            w = OXO_NAME(direct_fv_run)(acc, xc + run_off[r + 1], w, NP, R2);
        }
    }
    OXO_NAME(direct_fv_finish)(t, acc, NP);
}

#define OXO_FV_PAIR_NP_CASES_(R, R2)                                                           \
    case 1: OXO_NAME(direct_fv_pair_tile)(t, 1, R, R2); break;                                 \
    case 2: OXO_NAME(direct_fv_pair_tile)(t, 2, R, R2); break;                                 \
    case 3: OXO_NAME(direct_fv_pair_tile)(t, 3, R, R2); break;                                 \
    case 4: OXO_NAME(direct_fv_pair_tile)(t, 4, R, R2); break;                                 \
    case 5: OXO_NAME(direct_fv_pair_tile)(t, 5, R, R2); break;                                 \
    case 6: OXO_NAME(direct_fv_pair_tile)(t, 6, R, R2); break;                                 \
    case 7: OXO_NAME(direct_fv_pair_tile)(t, 7, R, R2); break;
#define OXO_FV_PAIR_CASE_(R, R2) \
    case R * 8 + R2: switch (t->np) { OXO_FV_PAIR_NP_CASES_(R, R2) default: break; } break;

static __attribute__((noinline)) void OXO_NAME(direct_fv_pairs)(const oxo_direct_fv_tile *t)
{
    if (t->run > 7 || t->run2 > 7) return;
    switch ((int)(t->run * 8 + t->run2)) {
    OXO_FV_PAIR_CASE_(2, 1)
    OXO_FV_PAIR_CASE_(3, 2)
    OXO_FV_PAIR_CASE_(4, 3)
    default: break;
    }
}
#undef OXO_FV_PAIR_NP_CASES_
#undef OXO_FV_PAIR_CASE_

/* One entry point: the instance compiled for (np, run). */
#define OXO_FV_NP_CASES_(R)                                                                    \
    case 1: OXO_NAME(direct_fv_tile)(t, 1, R); break;                                          \
    case 2: OXO_NAME(direct_fv_tile)(t, 2, R); break;                                          \
    case 3: OXO_NAME(direct_fv_tile)(t, 3, R); break;                                          \
    case 4: OXO_NAME(direct_fv_tile)(t, 4, R); break;                                          \
    case 5: OXO_NAME(direct_fv_tile)(t, 5, R); break;                                          \
    case 6: OXO_NAME(direct_fv_tile)(t, 6, R); break;                                          \
    case 7: OXO_NAME(direct_fv_tile)(t, 7, R); break;
#define OXO_FV_RUN_CASE_(R) case R: switch (t->np) { OXO_FV_NP_CASES_(R) default: break; } break;
#if OXO_FV_NP != 7
#error "OXO_FV_NP must be 7"
#endif

void OXO_NAME(direct_fv)(const oxo_direct_fv_tile *t)
{
    if (t->run2) {
        OXO_NAME(direct_fv_pairs)(t);
        return;
    }
    switch (t->run) {
    OXO_FV_RUN_CASE_(1)
    OXO_FV_RUN_CASE_(2)
    OXO_FV_RUN_CASE_(3)
    OXO_FV_RUN_CASE_(5)
    OXO_FV_RUN_CASE_(7)
    default: break;
    }
}
#undef OXO_FV_NP_CASES_
#undef OXO_FV_RUN_CASE_
