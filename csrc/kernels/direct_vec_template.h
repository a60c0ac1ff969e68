/* direct_vec_template.h: the direct-convolution micro-kernel, written once for every ISA and
 * dtype (see oxo_direct_tile in onexone.h; the driver is csrc/conv/conv2d.c).
 *
 * Computes: an m x (nv vectors) tile of one image's output, y = act(W * X + bias), through the
 *           whole reduction (channels x kernel taps) in registers, and stores it once.
 * Layout:   NCHW input read in place. The tile's lanes are consecutive positions of the
 *           output "grid" (ho*G + wo), so for a tap q and a channel c its input is NV
 *           consecutive vectors at x + c*cs_x + tap_off[q]: one masked load each, shared by
 *           the m output channels, whose weights are broadcast (implicit GEMM: broadcast W
 *           x vector X, as the gemm kernel, with the B pointer moved per (c, tap)).
 * Tile:     OXO_DIRECT_MR output channels x OXO_DIRECT_NV vectors of OXO_L lanes; instances
 *           are compiled for every m <= MR and nv <= NV.
 * Loops:    for channel block (cb channels, so its input rows stay in L1)
 *             for tap q (its lane masks loaded once, kept in mask registers)
 *               for channel c of the block: NV masked loads, m broadcasts, m*NV FMAs
 *           or (taps_inner), when every tap has the same masks (`uniform`: a zero-padded
 *           copy, only the lanes past the output rows are off), masks loaded once and
 *           for channel c, for tap q: the same body (few channels, e.g. an RGB stem, then
 *           still make a long inner loop).
 *           The innermost loop has no branch: padding and unused lanes are masked loads that
 *           read nothing and give 0 (which is then multiplied, as a zero-padded input would
 *           be, so Inf/NaN weights propagate as in the reference).
 * Edges:    every load and store is masked; nothing outside the valid lanes is touched.
 * Order:    one FMA chain per output element in the order (block, tap, channel), or
 *           (channel, tap) with taps_inner, the same for every tile, thread and vector width.
 *
 * The including file defines the vocabulary of gemm_vec_template.h (OXO_T, OXO_V, OXO_L,
 * OXO_M, OXO_LOADM, OXO_STORE, OXO_STOREM, OXO_SET1, OXO_ZERO, OXO_FMA, OXO_ADD, OXO_MAX,
 * OXO_MIN, OXO_NAME, OXO_UNROLL_K; and OXO_NAME(activate) from vec_activate.h, which
 * gemm_vec_template.h includes) plus
 *   OXO_MASKBITS(bits)   the OXO_M mask whose lane l is set when bit l of bits is
 *   OXO_DIRECT_MR, OXO_DIRECT_NV   the tile (NV <= 8)
 */

#ifndef OXO_UNROLL
#define OXO_UNROLL _Pragma("GCC unroll 16")
#endif
#ifndef OXO_KEEP_MASK
#define OXO_KEEP_MASK(m) ((void)0)
#endif

static inline __attribute__((always_inline)) void
OXO_NAME(direct_tile)(const oxo_direct_tile *t, const int MR, const int NV)
{
    const OXO_T *x = (const OXO_T *)t->x;
    const OXO_T *w = (const OXO_T *)t->w;
    const ptrdiff_t rs_w = t->rs_w, cs_w = t->cs_w, cs_x = t->cs_x;
    const size_t C = t->c, taps = t->taps, cb = t->cb;
    const ptrdiff_t w_per_c = (ptrdiff_t)taps * cs_w; /* W from channel c to c + 1 */

    OXO_V acc[OXO_DIRECT_MR][OXO_DIRECT_NV];
    OXO_UNROLL for (int i = 0; i < MR; i++) {
        OXO_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = OXO_ZERO();
    }

    /* x is loaded under its lane masks even where they are all ones: plain loads there, in
     * copies of the loops of their own, measured 0.97-1.00x (r50 3x3 layers, 1 and 2 threads,
     * alternating processes, Zen 4) */
    if (t->taps_inner) { /* one set of masks (a padded input): channels outside, taps inside */
        OXO_M m[OXO_DIRECT_NV];
        OXO_UNROLL for (int v = 0; v < NV; v++) m[v] = OXO_MASKBITS(t->tap_mask[v]);
        const ptrdiff_t *tap_off = t->tap_off;
        for (size_t c = 0; c < C; c++) {
            const OXO_T *xc = x + (ptrdiff_t)c * cs_x;
            const OXO_T *wp[OXO_DIRECT_MR];
            OXO_UNROLL for (int i = 0; i < MR; i++) wp[i] = w + i * rs_w + (ptrdiff_t)c * w_per_c;
            OXO_UNROLL_K for (size_t q = 0; q < taps; q++) {
                OXO_UNROLL for (int v = 0; v < NV; v++) OXO_KEEP_MASK(m[v]);
                const OXO_T *xp = xc + tap_off[q];
                OXO_V xv[OXO_DIRECT_NV];
                OXO_UNROLL for (int v = 0; v < NV; v++) xv[v] = OXO_LOADM(m[v], xp + v * OXO_L);
                const ptrdiff_t off = (ptrdiff_t)q * cs_w;
                OXO_UNROLL for (int i = 0; i < MR; i++) {
                    const OXO_V wi = OXO_SET1(wp[i][off]);
                    OXO_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = OXO_FMA(wi, xv[v], acc[i][v]);
                }
            }
        }
    }
    for (size_t c0 = 0; c0 < C && !t->taps_inner; c0 += cb) {
        const size_t cn = C - c0 < cb ? C - c0 : cb;
        for (size_t q = 0; q < taps; q++) {
            OXO_M m[OXO_DIRECT_NV];
            const uint32_t *bits = t->tap_mask + (t->uniform ? 0 : q * (size_t)NV);
            OXO_UNROLL for (int v = 0; v < NV; v++) m[v] = OXO_MASKBITS(bits[v]);
            /* masked-off lanes may lie outside the image: they are never dereferenced */
            const OXO_T *xp = x + (ptrdiff_t)c0 * cs_x + t->tap_off[q];
            const OXO_T *wp[OXO_DIRECT_MR];
            OXO_UNROLL for (int i = 0; i < MR; i++) wp[i] = w + i * rs_w + (ptrdiff_t)(c0 * taps + q) * cs_w;
            OXO_UNROLL_K for (size_t c = 0; c < cn; c++) {
                OXO_UNROLL for (int v = 0; v < NV; v++) OXO_KEEP_MASK(m[v]);
                OXO_V xv[OXO_DIRECT_NV];
                OXO_UNROLL for (int v = 0; v < NV; v++) xv[v] = OXO_LOADM(m[v], xp + v * OXO_L);
                const ptrdiff_t off = (ptrdiff_t)c * w_per_c;
                OXO_UNROLL for (int i = 0; i < MR; i++) {
                    const OXO_V wi = OXO_SET1(wp[i][off]);
                    OXO_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = OXO_FMA(wi, xv[v], acc[i][v]);
                }
                xp += cs_x;
            }
        }
    }

    /* epilogue: bias, activation, one store per output row segment */
    if (t->bias) {
        const OXO_T *bias = (const OXO_T *)t->bias;
        OXO_UNROLL for (int i = 0; i < MR; i++) {
            const OXO_V bi = OXO_SET1(bias[i]);
            OXO_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = OXO_ADD(acc[i][v], bi);
        }
    }
    if (t->act != OXO_ACT_NONE) {
        OXO_UNROLL for (int i = 0; i < MR; i++) {
            OXO_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = OXO_NAME(activate)(acc[i][v], t->act);
        }
    }
    OXO_T *y = (OXO_T *)t->y;
    const ptrdiff_t rs_y = t->rs_y;
    const size_t segs = t->st_segs;
    const uint32_t full = OXO_L >= 32 ? 0xFFFFFFFFu : (uint32_t)((1ull << OXO_L) - 1);
    OXO_UNROLL for (int v = 0; v < NV; v++) {
        for (size_t s = 0; s < segs; s++) {
            const uint32_t bits = t->st_mask[(size_t)v * segs + s];
            if (!bits) continue; /* an unused segment: its offset is not set */
            OXO_T *dst = y + t->st_off[(size_t)v * segs + s];
            if (bits == full) {
                OXO_UNROLL for (int i = 0; i < MR; i++) OXO_STORE(dst + i * rs_y, acc[i][v]);
            } else {
                const OXO_M sm = OXO_MASKBITS(bits);
                OXO_UNROLL for (int i = 0; i < MR; i++) OXO_STOREM(dst + i * rs_y, sm, acc[i][v]);
            }
        }
    }
}

/* One entry point: the instance compiled for (m, nv). */
#if OXO_DIRECT_NV == 1
#define OXO_DIRECT_NV_CASES_(M) case 1: OXO_NAME(direct_tile)(t, M, 1); break;
#elif OXO_DIRECT_NV == 2
#define OXO_DIRECT_NV_CASES_(M) case 1: OXO_NAME(direct_tile)(t, M, 1); break; \
                                case 2: OXO_NAME(direct_tile)(t, M, 2); break;
#elif OXO_DIRECT_NV == 3
#define OXO_DIRECT_NV_CASES_(M) case 1: OXO_NAME(direct_tile)(t, M, 1); break; \
                                case 2: OXO_NAME(direct_tile)(t, M, 2); break; \
                                case 3: OXO_NAME(direct_tile)(t, M, 3); break;
#elif OXO_DIRECT_NV == 4
#define OXO_DIRECT_NV_CASES_(M) case 1: OXO_NAME(direct_tile)(t, M, 1); break; \
                                case 2: OXO_NAME(direct_tile)(t, M, 2); break; \
                                case 3: OXO_NAME(direct_tile)(t, M, 3); break; \
                                case 4: OXO_NAME(direct_tile)(t, M, 4); break;
#elif OXO_DIRECT_NV == 8
#define OXO_DIRECT_NV_CASES_(M) case 1: OXO_NAME(direct_tile)(t, M, 1); break; \
                                case 2: OXO_NAME(direct_tile)(t, M, 2); break; \
                                case 3: OXO_NAME(direct_tile)(t, M, 3); break; \
                                case 4: OXO_NAME(direct_tile)(t, M, 4); break; \
                                case 5: OXO_NAME(direct_tile)(t, M, 5); break; \
                                case 6: OXO_NAME(direct_tile)(t, M, 6); break; \
                                case 7: OXO_NAME(direct_tile)(t, M, 7); break; \
                                case 8: OXO_NAME(direct_tile)(t, M, 8); break;
#else
#error "OXO_DIRECT_NV must be 1, 2, 3, 4 or 8"
#endif
#define OXO_DIRECT_M_CASE_(M) case M: switch (t->nv) { OXO_DIRECT_NV_CASES_(M) default: break; } break;

void OXO_NAME(direct)(const oxo_direct_tile *t)
{
    switch (t->m) {
    OXO_DIRECT_M_CASE_(1)
#if OXO_DIRECT_MR >= 2
    OXO_DIRECT_M_CASE_(2)
#endif
#if OXO_DIRECT_MR >= 3
    OXO_DIRECT_M_CASE_(3)
#endif
#if OXO_DIRECT_MR >= 4
    OXO_DIRECT_M_CASE_(4)
#endif
#if OXO_DIRECT_MR >= 5
    OXO_DIRECT_M_CASE_(5)
#endif
#if OXO_DIRECT_MR >= 6
    OXO_DIRECT_M_CASE_(6)
#endif
#if OXO_DIRECT_MR >= 7
    OXO_DIRECT_M_CASE_(7)
#endif
#if OXO_DIRECT_MR >= 8
    OXO_DIRECT_M_CASE_(8)
#endif
#if OXO_DIRECT_MR > 8
#error "OXO_DIRECT_MR must be at most 8"
#endif
    default: break;
    }
}
#undef OXO_DIRECT_NV_CASES_
#undef OXO_DIRECT_M_CASE_
