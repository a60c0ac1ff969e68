/* onexone.h: the C ABI of onexone.
 *
 * Three layers, each calling only the one below it:
 *   ops (conv1x1, conv2d, gradients)       csrc/conv/
 *   one blocked GEMM engine               csrc/gemm/gemm.c
 *   register-tile micro-kernels per ISA    csrc/kernels/<isa>/
 * The Cython layer (src/onexone/_core.pyx) calls the ops only, with the GIL released.
 *
 * Conventions: all sizes and strides are 64-bit (ptrdiff_t / size_t) and counted in elements,
 * never bytes. Every function returns 0 on success or a negative OXO_E* code; nothing here
 * prints, aborts or allocates inside a loop.
 */
#ifndef ONEXONE_H
#define ONEXONE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- error codes ---------------------------------------------------------------------- */
#define OXO_OK 0
#define OXO_ENOMEM (-1) /* scratch allocation failed */
#define OXO_EINVAL (-2) /* an argument the Python layer should have rejected */

/* ---- element types, activations, ISAs -------------------------------------------------- */
typedef enum { OXO_F32 = 0, OXO_F64 = 1 } oxo_dtype;
typedef enum { OXO_ACT_NONE = 0, OXO_ACT_RELU = 1, OXO_ACT_RELU6 = 2 } oxo_act;
typedef enum { OXO_ISA_SCALAR = 0, OXO_ISA_AVX2 = 1, OXO_ISA_AVX512 = 2, OXO_ISA_COUNT = 3 } oxo_isa;

/* ---- the micro-kernel ABI -------------------------------------------------------------------
 * One call computes an m x n tile of C (m <= MR, n <= NR of the kernel set):
 *
 *     C[i, j] (+)= sum_{p < k} A[i, p] * B[p, j]        i < m, j < n
 *
 * with A[i, p] = a[i*rs_a + p*cs_a] (any strides: packed panels, row-major weights, or a
 * transposed view), B[p, j] = b[p*rs_b + j] (rows contiguous: the input image itself or a
 * packed block) and C[i, j] = c[i*rs_c + j*cs_c] (cs_c 1: rows of C contiguous; otherwise,
 * with rs_c 1, C is written transposed: y^T computed into an NHWC y). The sum over p is one sequential fused
 * multiply-add chain per element, starting from 0 (or from C when OXO_TILE_ACCUM is set),
 * so an element's value depends only on K's block boundaries, never on the tile it lands in,
 * the ISA's vector width or the thread that computes it. With OXO_TILE_ADDC instead, the
 * block's chain starts from 0 and C + (the block's sum) is stored: blocked summation, for the
 * long reductions of the weight gradient (a sum over every pixel of every image).
 * Edge tiles (m < MR, n < NR) neither read nor write past the m x n tile: B and C columns
 * past n are masked.
 * With OXO_TILE_FINAL the epilogue adds the bias (per row or per column of C) and then
 * applies the activation before the one store. Without OXO_TILE_ACCUM C is never read. */
enum {
    OXO_TILE_ACCUM = 1, /* C += A B instead of C = A B */
    OXO_TILE_FINAL = 2, /* add bias, apply activation */
    OXO_TILE_PREFETCH_B = 4, /* per row p of B read, prefetch NR columns at b + pf_off + p*rs_b */
    OXO_TILE_PREFETCH_A = 8, /* 16-row tiles of the tall set: fetch the next 16 rows of A (a hint) */
    OXO_TILE_ADDC = 16, /* C += (A B from 0): C added once, after the block's chain */
};
enum { OXO_BIAS_NONE = 0, OXO_BIAS_ROW = 1, OXO_BIAS_COL = 2 };

typedef struct oxo_tile {
    size_t m, n, k;
    const void *a;
    ptrdiff_t rs_a, cs_a;
    const void *b;
    ptrdiff_t rs_b;
    void *c;
    ptrdiff_t rs_c, cs_c;
    const void *bias; /* bias + row0 (per row) or bias + col0 (per column), already offset */
    int bias_mode;    /* OXO_BIAS_* */
    int act;          /* oxo_act */
    int flags;        /* OXO_TILE_* */
    ptrdiff_t pf_off; /* with OXO_TILE_PREFETCH_B: where the prefetched rows start, from b */
} oxo_tile;

typedef void (*oxo_gemm_ukernel)(const oxo_tile *t);

/* The micro-kernel "dot" variant: C[i, j] (+)= sum_p A[i, p] * Bt[j, p] with both operands
 * contiguous along p (a[i*rs_a + p], bt[j*rs_bt + p]); vectorized along p and reduced across
 * lanes at the end. Used where the reduction runs along contiguous memory of both operands
 * (the columns of a narrow image tail). Same flags and epilogue as above, C element
 * (i, j) at c[i*rs_c + j*cs_c]. */
typedef struct oxo_dot_tile {
    size_t m, n, k;
    const void *a;
    ptrdiff_t rs_a;
    const void *bt;
    ptrdiff_t rs_bt;
    void *c;
    ptrdiff_t rs_c, cs_c;
    const void *bias;
    int bias_mode;
    int act;
    int flags;
} oxo_dot_tile;

typedef void (*oxo_dot_ukernel)(const oxo_dot_tile *t);

/* The direct-convolution micro-kernel (csrc/kernels/direct_vec_template.h; the driver is
 * csrc/conv/conv2d.c). The output pixels of one image are laid on a "grid" of lanes in which
 * every kernel tap reads the input at a fixed offset (stride-1 rows of pitch G: lane
 * j = ho*G + wo), so a tap is one (masked) vector load per vector of lanes, read in place:
 *
 *     acc[i][v, l] = sum over channel blocks of cb, taps q, channels c of the block:
 *                    W[i, c*taps + q] * X(c, q, v, l)
 *     W[i, p]        = w[i*rs_w + p*cs_w]                       (m rows: output channels)
 *     X(c, q, v, l)  = x[c*cs_x + tap_off[q] + v*lanes + l]  if bit l of tap_mask[q*nv + v]
 *                      is set, else 0 (padding, lanes past the output row)
 *
 * for nv vectors v of `lanes` lanes l; then act(acc + bias[i]) is stored once: the lanes set
 * in st_mask[v*st_segs + s] go to y[i*rs_y + st_off[v*st_segs + s] + l] (a segment for each
 * output row the vector touches). The whole reduction runs in registers: an
 * element's sum is one FMA chain in a fixed order, (channel block, tap, channel), or
 * (channel, tap) with taps_inner, whatever the tile or thread that computes it.
 * Masked-off lanes are never read or written. */
typedef struct oxo_direct_tile {
    size_t m, nv;         /* rows <= direct_mr, vectors <= direct_nv */
    size_t c, taps, cb;   /* channels, taps (KH*KW), channels per block (>= 1) */
    const void *w;
    ptrdiff_t rs_w, cs_w;
    const void *x;        /* lane 0 of the tile at channel 0 (tap offsets are relative) */
    ptrdiff_t cs_x;
    const ptrdiff_t *tap_off; /* [taps] */
    const uint32_t *tap_mask; /* [taps * nv], or [nv] for every tap when `uniform` */
    int uniform;          /* 1: one set of lane masks for all taps (a padded input) */
    int taps_inner;       /* 1 (needs uniform): the order (channel, tap), taps innermost */
    void *y;              /* the output plane of row 0 (st_off counts from its pixel 0) */
    ptrdiff_t rs_y;
    const ptrdiff_t *st_off;  /* [nv * st_segs] */
    const uint32_t *st_mask;  /* [nv * st_segs]; 0: an unused segment */
    size_t st_segs;
    const void *bias;     /* m values or NULL */
    int act;
} oxo_direct_tile;

typedef void (*oxo_direct_ukernel)(const oxo_direct_tile *t);

/* The direct-convolution micro-kernel vectorized along output channels
 * (csrc/kernels/direct_fv_template.h), for inputs the driver has copied zero-padded and
 * split into stride phases (stride 1, no padding there), with the taps in `runs` runs of
 * `run` taps that read consecutive columns:
 *
 *     y[i*rs_y + p] = act(sum over channels c, runs r, taps k < run of
 *                         W[c][r][k][i] * x[c*cs_x + run_off[r] + k + p]  + bias[i])
 *
 * for np pixels p (consecutive in one output row) and the first m output channels i of a
 * block of direct_fv_nv vectors of `lanes` channels; W is packed for the block as
 * [c][r][k][direct_fv_nv * lanes], 64-byte aligned and zero past F, and bias likewise (or
 * NULL). run is 1, 2, 3, 5 or 7 with run2 = 0, or (run, run2) is (2, 1), (3, 2) or (4, 3):
 * runs r alternate between run and run2 taps (odd kernels at stride 2: a kernel row's even
 * and odd columns). One FMA chain per element in the order (c, r, k), then the bias. */
typedef struct oxo_direct_fv_tile {
    size_t np, m;         /* pixels <= direct_fv_np; output channels stored */
    size_t c, runs, run;
    size_t run2;          /* 0, or runs alternate between `run` and `run2` taps (even runs) */
    const void *w;        /* the block's packed weights */
    const void *x;        /* pixel 0 at channel 0 (run offsets are relative) */
    ptrdiff_t cs_x;
    const ptrdiff_t *run_off; /* [runs] */
    const void *bias;     /* the block's packed bias, or NULL */
    int act;
    void *y;              /* output channel 0, pixel 0 */
    ptrdiff_t rs_y;
} oxo_direct_fv_tile;

typedef void (*oxo_direct_fv_ukernel)(const oxo_direct_fv_tile *t);

/* The depthwise micro-kernel (csrc/kernels/dw_vec_template.h; the driver is
 * oxo_conv2d_depthwise_nchw): rows x wo outputs of one output channel, C-contiguous at y,
 *     y[r, u] = act(sum_{t < taps} w[t] * src[tap_off[t] + r*row_step + u] + bias[0])
 * (bias NULL: 0), the taps' chain in order, then the bias. Masked loads and stores past wo. */
typedef struct oxo_dw_tile {
    size_t rows, wo, taps;
    const void *src;
    const ptrdiff_t *tap_off;
    ptrdiff_t row_step;
    const void *w;    /* taps values, contiguous */
    const void *bias; /* one value, or NULL */
    int act;
    void *y;
} oxo_dw_tile;

typedef void (*oxo_dw_ukernel)(const oxo_dw_tile *t);

/* A kernel set: what one ISA provides for one dtype. */
typedef struct oxo_kernels {
    const char *name;      /* e.g. "f32-gemm-6x48-avx512" */
    size_t mr, nr;         /* register tile of gemm: rows (broadcast) x columns (vector) */
    size_t lanes;          /* vector width in elements */
    oxo_gemm_ukernel gemm; /* handles any m <= mr, n <= nr */
    oxo_dot_ukernel dot;   /* handles any m <= dot_mr, n <= dot_nr */
    size_t dot_mr, dot_nr;
    /* FMA throughput probe: `iters` rounds of 12 independent vector FMA chains
     * (12 * lanes * 2 FLOP a round); returns a value that depends on every chain. */
    float (*fma_probe)(long iters);
    oxo_direct_ukernel direct; /* handles any m <= direct_mr, nv <= direct_nv (of `lanes`) */
    size_t direct_mr, direct_nv;
    /* NULL, or a set of half-width vectors for GEMMs 21-24 columns wide (see oxo_gemm_run) */
    const struct oxo_kernels *narrow;
    oxo_dw_ukernel dw; /* depthwise convolution rows (NULL in the narrow sets) */
    /* NULL, or the direct kernel vectorized along output channels (np <= direct_fv_np
     * pixels x direct_fv_nv vectors) */
    oxo_direct_fv_ukernel direct_fv;
    size_t direct_fv_np, direct_fv_nv;
    /* NULL, or a transpose of up to `lanes` rows: dst[k*ld + i] = src[i*rs + k] for
     * i < lanes (0 for rows i >= rows), k < cols (direct_fv's packed weights) */
    void (*transpose_rows)(const void *src, ptrdiff_t rs, size_t rows, size_t cols, void *dst, size_t ld);
    /* NULL, or a set with more rows for GEMMs at most one vector wide (see oxo_gemm_run) */
    const struct oxo_kernels *tall;
    /* NULL, or both column phases of a row at stride 2 (the direct algorithm's copy):
     * r0[i] = in[2i - pw], r1[i] = in[2i + 1 - pw] for i < u, 0 outside in's w columns */
    void (*phase_row2)(void *r0, void *r1, const void *in, ptrdiff_t pw, size_t w, size_t u);
    /* NULL, or a set whose vectors hold 8 columns x 2 steps of K, for GEMMs at most nr columns
     * wide with A contiguous along K and B packed by oxo_pack_pairs_* (see oxo_gemm_run) */
    const struct oxo_kernels *pairs;
    /* NULL, or a set of 6 rows x 64 columns for GEMMs 64 or 128 columns wide whose B is packed
     * (see oxo_gemm_run) */
    const struct oxo_kernels *wide;
} oxo_kernels;

/* ---- dispatch (csrc/dispatch.c) ------------------------------------------------------------ */
/* Detects the CPU once (CPUID and the OS's saved register state) and honours ONEXONE_ISA. */
oxo_isa oxo_isa_detected(void);       /* best this CPU and OS support */
oxo_isa oxo_isa_active(void);         /* the one in use */
int oxo_isa_set(oxo_isa isa);         /* returns OXO_EINVAL if the CPU lacks it */
const char *oxo_isa_name(oxo_isa isa);
const oxo_kernels *oxo_kernels_for(oxo_isa isa, oxo_dtype dt); /* NULL if not compiled in */
size_t oxo_l2_bytes(void); /* one core's L2 cache, asked once; 1 MiB where the OS cannot say */

/* Per-ISA tables (csrc/kernels/<isa>/). */
extern const oxo_kernels oxo_f32_kernels_scalar, oxo_f64_kernels_scalar;
extern const oxo_kernels oxo_f32_kernels_avx2, oxo_f64_kernels_avx2;
extern const oxo_kernels oxo_f32_kernels_avx512, oxo_f64_kernels_avx512;

/* ---- threads (csrc/threads.c) ------------------------------------------------------------- */
int oxo_openmp_enabled(void);   /* 1 if built with OpenMP */
int oxo_max_threads(void);      /* what n_threads=None means now (omp_get_max_threads) */
int oxo_resolve_threads(int n); /* n <= 0: oxo_max_threads(); else n; 1 in a forked child */
void oxo_threads_init(void);    /* once, at import: fork safety */
const char *oxo_openmp_library(void); /* path of the OpenMP runtime in use, or NULL */

/* Measured fp32 FMA peak of the active ISA's kernels on n_threads threads, in GFLOP/s
 * (csrc/probe.c; the method of shared/probe/peak.c). Runs about `seconds`. */
double oxo_probe_peak_gflops(int n_threads, double seconds);
/* 1 if this core's 512-bit FMAs run at full width, so GEMMs 21-24 columns wide take ks's
 * masked tile instead of its narrow set (probed once; 0 without a narrow set). */
int oxo_probe_full_width(const oxo_kernels *ks);

/* ---- the GEMM engine (csrc/gemm/gemm.c) ----------------------------------------------------
 * For b in [0, batch):  C_b = act(A_b @ B_b + bias)
 *   A_b[i, p] = A[b*bs_a + i*rs_a + p*cs_a]                         (M x K)
 *   B_b[p, j]: see below                                            (K x N)
 *   C_b[i, j] = C[b*bs_c + i*rs_c + j]                              (M x N)
 * or, with reduce_batch, one C = act(sum_b A_b @ B_b + bias) (the images' products summed in
 * order: a weight gradient).
 *
 * B comes from one of two sources:
 *  - strided (pack_b == NULL): B_b[p, j] = B[b*bs_b + p*rs_b + (j / b_w)*cs_bh + (j % b_w)*cs_bw],
 *    the columns being the pixels of a b_w-wide image (b_w = 0: one row of N). Columns at B + j
 *    (cs_bw == 1 and cs_bh == b_w) are read in place; any other layout is packed block by block
 *    into per-thread scratch;
 *  - a packer (pack_b != NULL) that writes any block of B_b on demand: im2col, strided
 *    convolutions, transposed weights. Blocks are always packed then.
 * A packer writes rows [p0, p0 + kc) x columns [j0, j0 + nc) of B_b into dst, row-major
 * (dst[p*ld + j]) or, when transposed, column-major (dst[j*ld + p]). */
typedef void (*oxo_pack_b_fn)(const void *ctx, size_t b, size_t p0, size_t kc, size_t j0,
                              size_t nc, void *dst, size_t ld, int transposed);

typedef struct oxo_gemm {
    oxo_dtype dtype;
    size_t batch, M, N, K;
    const void *A;
    ptrdiff_t bs_a, rs_a, cs_a;
    const void *B;
    ptrdiff_t bs_b, rs_b;
    size_t b_w;
    ptrdiff_t cs_bh, cs_bw;
    oxo_pack_b_fn pack_b; /* NULL: strided B above */
    const void *pack_ctx;
    void *C;
    ptrdiff_t bs_c, rs_c;
    ptrdiff_t cs_c;   /* 0 or 1: C_b[i, j] at C[b*bs_c + i*rs_c + j]; else at + j*cs_c (rs_c 1:
                       * C transposed, y^T written into an NHWC y) */
    const void *bias; /* NULL, or M values (OXO_BIAS_ROW) or N values (OXO_BIAS_COL) */
    int bias_mode;
    int act;
    int accumulate;   /* 1: C += A B (bias/act still applied at the end if given) */
    int reduce_batch; /* 1: C = sum over b (bs_c unused) */
    int n_threads;    /* <= 0: all usable */
    /* Groups (grouped convolutions): every image b holds `groups` independent products,
     * group q's operands offset by q*gs_a, q*gs_b, q*gs_c and q*gs_bias elements. 0 or 1: none.
     * A packer is called with image index b*groups + q. */
    size_t groups;
    ptrdiff_t gs_a, gs_b, gs_c, gs_bias;
} oxo_gemm;

int oxo_gemm_run(const oxo_gemm *g);

/* Cache block sizes in use (for show_config): KC rows of B and NC columns of B form the
 * block kept in L2; the register tile MR x NR is the kernel set's. */
typedef struct oxo_blocking {
    size_t kc, nc;
} oxo_blocking;
oxo_blocking oxo_gemm_blocking(oxo_dtype dt);
/* Tests only: 0 sends every GEMM through the KC-blocked route (same results, see gemm.c; but
 * on the pairs sets, whose two chains per sum meet at the end of each K block, within rounding);
 * how many GEMMs took the full-K route so far. */
void oxo_gemm_allow_full_k(int allow);
size_t oxo_gemm_full_k_runs(void);
/* Tests only: GEMMs at most one vector wide on the kernel set's tall tile where the rule says
 * (1, the default: where 512-bit FMAs run at full width), wherever the ISA has one (2), or
 * never (0, the full set): the same results. */
void oxo_gemm_allow_tall(int mode);
/* Tests only: GEMMs 21-24 columns wide always on the narrow set (1), always on the full set's
 * masked tile (2), or by oxo_probe_full_width (0, the default). */
void oxo_gemm_narrow_mode(int mode);
/* Tests only: B read in place past a vector boundary runs its peel (gemm.c, peel_pays) by
 * the rule (0, the default), always (1) or never (2). The same results either way. */
void oxo_gemm_peel_mode(int mode);
/* Tests only: GEMMs that fit the pairs set (oxo_kernels.pairs) run on it by the rule (0, the
 * default), never (1) or wherever it fits (2). Results within rounding of each other: its
 * sums run over even and odd k in two chains. */
void oxo_gemm_pairs_mode(int mode);
/* Tests only: GEMMs 64 or 128 columns wide with B packed on the wide set (1, by the rule, the
 * default) or on the full set (0): the same results. */
void oxo_gemm_allow_wide(int allow);

/* ---- operations (csrc/conv/) ----------------------------------------------------------------
 * 4-D tensors are described by their sizes and element strides, so any NumPy view (Fortran
 * order, negative or zero strides, offsets) comes in without a copy. */
typedef struct oxo_tensor4 {
    const void *data;
    size_t n, c, h, w;
    ptrdiff_t sn, sc, sh, sw;
} oxo_tensor4;

/* y (N, F, Ho, Wo), C-contiguous, = act(conv1x1(x, w) + bias); w is (F, C) with strides
 * (sw_f, sw_c); bias is F contiguous values or NULL. */
int oxo_conv1x1_nchw(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t sw_f,
                     ptrdiff_t sw_c, size_t f, size_t groups, const void *bias, int act, void *y,
                     int n_threads);
/* NHWC: x described as (N, C, H, W) by its strides (a transposed view), its pixels one
 * sequence; y (N, H, W, F) C-contiguous. */
int oxo_conv1x1_nhwc(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t sw_f,
                     ptrdiff_t sw_c, size_t f, size_t groups, const void *bias, int act, void *y,
                     int n_threads);
/* Gradients. dy described as (N, F, Ho, Wo); grad_x into dx C-contiguous (N, C, Ho, Wo), or
 * (N, Ho, Wo, C) with nhwc; grad_w into dw (F, C/groups) C-contiguous. */
int oxo_conv1x1_grad_x(oxo_dtype dt, int nhwc, const oxo_tensor4 *dy, const void *w,
                       ptrdiff_t sw_f, ptrdiff_t sw_c, size_t c, size_t groups, void *dx,
                       int n_threads);
int oxo_conv1x1_grad_w(oxo_dtype dt, const oxo_tensor4 *dy, const oxo_tensor4 *x, size_t groups,
                       void *dw, int n_threads);

/* KxK convolution (csrc/conv/conv2d.c). Output pixel (ho, wo) reads input pixel
 * (ho*sh - ph + kh*dh, wo*sw - pw + kw*dw) for tap (kh, kw); reads outside the image are
 * zeros (ph, pw are the top/left padding; ho, wo, computed by the caller, imply the
 * bottom/right one, so asymmetric "same" padding needs nothing more). */
typedef struct oxo_conv2d_geom {
    size_t kh, kw;     /* kernel size */
    size_t ho, wo;     /* output size */
    ptrdiff_t sh, sw;  /* stride >= 1 */
    ptrdiff_t ph, pw;  /* top / left padding >= 0 */
    ptrdiff_t dh, dw;  /* dilation >= 1 */
} oxo_conv2d_geom;

/* y (N, F, Ho, Wo), C-contiguous, = act(conv2d(x, w) + bias); w is (F, C*KH*KW) with
 * strides (rs_w, cs_w), its columns in (c, kh, kw) order; bias F values or NULL.
 *  - direct: the direct kernel above, no im2col buffer (strided or over-padded inputs are
 *    first copied once into a zero-padded, stride-phase-split image of about x's size);
 *  - im2col: one oxo_gemm whose B blocks are packed from the implicit im2col matrix. */
int oxo_conv2d_direct_nchw(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t rs_w,
                           ptrdiff_t cs_w, size_t f, const oxo_conv2d_geom *geom,
                           const void *bias, int act, void *y, int n_threads);
/* The same with groups (1 <= groups dividing C and F): group q of the output, channels
 * [q*F/G, (q+1)*F/G), from channels [q*C/G, (q+1)*C/G) of x and rows q*F/G.. of w (F, C/G*taps);
 * y contiguous. All of an image's groups in one parallel region. */
int oxo_conv2d_direct_grouped_nchw(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t rs_w,
                                   ptrdiff_t cs_w, size_t f, const oxo_conv2d_geom *geom, size_t groups,
                                   const void *bias, int act, void *y, int n_threads);
/* Depthwise (groups == C, one input channel per group, F = C * multiplier): output channel
 * f reads input channel f / (F / C); w is (F, KH*KW) with strides (rs_w, cs_w). */
int oxo_conv2d_depthwise_nchw(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t rs_w,
                              ptrdiff_t cs_w, size_t f, const oxo_conv2d_geom *geom,
                              const void *bias, int act, void *y, int n_threads);
int oxo_conv2d_im2col_nchw(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t rs_w,
                           ptrdiff_t cs_w, size_t f, const oxo_conv2d_geom *geom,
                           const void *bias, int act, void *y, int n_threads);
/* The rule of algorithm="auto" (1x1 kernels aside): 1 if the direct kernel is expected to be
 * faster than im2col for this input and geometry on the active ISA, else 0. */
int oxo_conv2d_prefer_direct(oxo_dtype dt, const oxo_tensor4 *x, size_t f, const oxo_conv2d_geom *geom);
/* Tests only: the channel-vectorized direct kernel never (0), where the rule says (1, the
 * default) or wherever the ISA has one (2); how many direct convolutions have run it. */
void oxo_conv2d_allow_fv(int mode);
size_t oxo_conv2d_fv_runs(void);
/* The width test of that rule: the active ISA has the channel-vectorized kernel and its
 * 512-bit FMAs run at full width (oxo_probe_full_width); show_config reports it. */
int oxo_conv2d_fv_width_ok(void);

/* Grouped conv2d (weight (F, C/groups*KH*KW)) by im2col blocks, and the gradients of conv2d
 * (csrc/conv/conv2d_grouped.c): dy described as (N, F, Ho, Wo); dw (F, C/groups*KH*KW) and
 * dx (N, C, H, W) C-contiguous. */
int oxo_conv2d_im2col_grouped(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t rs_w,
                              ptrdiff_t cs_w, size_t f, const oxo_conv2d_geom *geom,
                              size_t groups, const void *bias, int act, void *y, int n_threads);
int oxo_conv2d_grad_w(oxo_dtype dt, const oxo_tensor4 *dy, const oxo_tensor4 *x,
                      const oxo_conv2d_geom *geom, size_t groups, void *dw, int n_threads);
int oxo_conv2d_grad_x(oxo_dtype dt, const oxo_tensor4 *dy, const void *w, ptrdiff_t rs_w,
                      ptrdiff_t cs_w, const oxo_conv2d_geom *geom, size_t groups, size_t c,
                      size_t h, size_t wd, void *dx, int n_threads);

#ifdef __cplusplus
}
#endif
#endif
