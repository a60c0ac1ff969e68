# cython: language_level=3
"""Thin layer between the checked Python API and the C engine.

Every function here takes arrays that ``_args.py`` has already validated (dtype float32 or
float64, native byte order, element-aligned strides, shapes consistent, ``out`` allocated),
releases the GIL and makes one C call. Nothing clever lives here.
"""
cimport numpy as cnp
from libc.stddef cimport ptrdiff_t

cnp.import_array()
oxo_threads_init()


cdef extern from "onexone.h" nogil:
    ctypedef enum oxo_dtype:
        OXO_F32
        OXO_F64
    ctypedef enum oxo_isa:
        OXO_ISA_SCALAR
        OXO_ISA_AVX2
        OXO_ISA_AVX512
        OXO_ISA_COUNT
    int OXO_OK
    int OXO_ENOMEM
    ctypedef struct oxo_kernels:
        const char *name
        size_t mr, nr, lanes
        const void *narrow
        const void *tall
        const void *pairs
        const void *wide
    ctypedef struct oxo_blocking:
        size_t kc, nc
    ctypedef struct oxo_tensor4:
        const void *data
        size_t n, c, h, w
        ptrdiff_t sn, sc, sh, sw

    oxo_isa oxo_isa_detected()
    oxo_isa oxo_isa_active()
    int oxo_isa_set(oxo_isa isa)
    const char *oxo_isa_name(oxo_isa isa)
    const oxo_kernels *oxo_kernels_for(oxo_isa isa, oxo_dtype dt)
    oxo_blocking oxo_gemm_blocking(oxo_dtype dt)
    size_t oxo_l2_bytes()
    void oxo_gemm_allow_full_k(int allow)
    void oxo_gemm_allow_tall(int mode)
    size_t oxo_gemm_full_k_runs()
    int oxo_probe_full_width(const oxo_kernels *ks)
    void oxo_gemm_narrow_mode(int mode)
    void oxo_gemm_peel_mode(int mode)
    void oxo_gemm_pairs_mode(int mode)
    void oxo_gemm_allow_wide(int allow)
    void oxo_conv2d_allow_fv(int mode)
    size_t oxo_conv2d_fv_runs()
    int oxo_conv2d_fv_width_ok()
    int oxo_openmp_enabled()
    int oxo_max_threads()
    const char *oxo_openmp_library()
    double oxo_probe_peak_gflops(int n_threads, double seconds)
    void oxo_threads_init()

    int oxo_conv1x1_nchw(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t sw_f,
                         ptrdiff_t sw_c, size_t f, size_t groups, const void *bias, int act,
                         void *y, int n_threads)
    int oxo_conv1x1_nhwc(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t sw_f,
                         ptrdiff_t sw_c, size_t f, size_t groups, const void *bias, int act,
                         void *y, int n_threads)
    int oxo_conv1x1_grad_x(oxo_dtype dt, int nhwc, const oxo_tensor4 *dy, const void *w,
                           ptrdiff_t sw_f, ptrdiff_t sw_c, size_t c, size_t groups, void *dx,
                           int n_threads)
    int oxo_conv1x1_grad_w(oxo_dtype dt, const oxo_tensor4 *dy, const oxo_tensor4 *x,
                           size_t groups, void *dw, int n_threads)
    ctypedef struct oxo_conv2d_geom:
        size_t kh, kw, ho, wo
        ptrdiff_t sh, sw, ph, pw, dh, dw
    int oxo_conv2d_direct_nchw(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t rs_w,
                               ptrdiff_t cs_w, size_t f, const oxo_conv2d_geom *geom,
                               const void *bias, int act, void *y, int n_threads)
    int oxo_conv2d_im2col_nchw(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t rs_w,
                               ptrdiff_t cs_w, size_t f, const oxo_conv2d_geom *geom,
                               const void *bias, int act, void *y, int n_threads)
    int oxo_conv2d_depthwise_nchw(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t rs_w,
                                  ptrdiff_t cs_w, size_t f, const oxo_conv2d_geom *geom,
                                  const void *bias, int act, void *y, int n_threads)
    int oxo_conv2d_prefer_direct(oxo_dtype dt, const oxo_tensor4 *x, size_t f, const oxo_conv2d_geom *geom)
    int oxo_conv2d_direct_grouped_nchw(oxo_dtype dt, const oxo_tensor4 *x, const void *w,
                                       ptrdiff_t rs_w, ptrdiff_t cs_w, size_t f,
                                       const oxo_conv2d_geom *geom, size_t groups, const void *bias,
                                       int act, void *y, int n_threads)
    int oxo_conv2d_im2col_grouped(oxo_dtype dt, const oxo_tensor4 *x, const void *w,
                                  ptrdiff_t rs_w, ptrdiff_t cs_w, size_t f,
                                  const oxo_conv2d_geom *geom, size_t groups, const void *bias,
                                  int act, void *y, int n_threads)
    int oxo_conv2d_grad_w(oxo_dtype dt, const oxo_tensor4 *dy, const oxo_tensor4 *x,
                          const oxo_conv2d_geom *geom, size_t groups, void *dw, int n_threads)
    int oxo_conv2d_grad_x(oxo_dtype dt, const oxo_tensor4 *dy, const void *w, ptrdiff_t rs_w,
                          ptrdiff_t cs_w, const oxo_conv2d_geom *geom, size_t groups, size_t c,
                          size_t h, size_t wd, void *dx, int n_threads)


cdef inline oxo_dtype _dtype_code(cnp.ndarray a):
    return OXO_F64 if cnp.PyArray_ITEMSIZE(a) == 8 else OXO_F32


cdef inline void _tensor4(cnp.ndarray a, oxo_tensor4 *t):
    """Describe a 4-D array by its sizes and element strides."""
    cdef cnp.npy_intp *shape = cnp.PyArray_DIMS(a)
    cdef cnp.npy_intp *strides = cnp.PyArray_STRIDES(a)
    cdef ptrdiff_t item = cnp.PyArray_ITEMSIZE(a)
    t.data = cnp.PyArray_DATA(a)
    t.n, t.c, t.h, t.w = shape[0], shape[1], shape[2], shape[3]
    t.sn, t.sc, t.sh, t.sw = strides[0] // item, strides[1] // item, strides[2] // item, strides[3] // item


cdef inline int _check(int rc) except -1:
    if rc == OXO_ENOMEM:
        raise MemoryError("onexone: could not allocate the scratch buffers for this call")
    if rc != OXO_OK:
        raise RuntimeError(f"onexone: internal error {rc}")
    return 0


# ---- fast path -------------------------------------------------------------------------------
# The common call (ndarrays of one float dtype, 4-D x, an (F, C, 1, 1) or (F, C) weight, an
# optional matching bias, no out or a clean one) is recognized here in well under a
# microsecond; anything else returns None and the caller runs the full checks in _args.py,
# which own every error message.

# onexone.set_num_threads(n): n, and OpenMP's omp_get_max_threads() when it was called. A
# tighter OpenMP limit set later (omp_set_num_threads, threadpoolctl's threadpool_limits)
# caps n while it lasts, so threadpool_limits(1) makes onexone single-threaded whatever
# set_num_threads said; leaving the block gives n back. OpenMP keeps no record of who set
# its count, so "tighter" means below the count at set_num_threads: a limit at or above it
# is not seen (under OMP_NUM_THREADS=1, threadpool_limits(1); on 2 cores,
# threadpool_limits(3) after set_num_threads(4)), as a count that rose when a block was left
# must not cap a set_num_threads called inside it. (The comparison is with the calling
# thread's OpenMP count, which other threads do not share: a limit entered in one thread
# does not cap the others.)
cdef int _default_threads = 0  # 0: omp_get_max_threads()
cdef int _omp_at_set = 0


def set_default_threads(int n):
    global _default_threads, _omp_at_set
    _default_threads = n
    _omp_at_set = oxo_max_threads()


cdef inline int _default_or_omp() noexcept:
    """set_num_threads' count, capped by a tighter OpenMP limit set since; 0 (OpenMP's
    count) when set_num_threads was not called."""
    if _default_threads <= 0:
        return 0
    cdef int omp = oxo_max_threads()
    if omp < _omp_at_set and omp < _default_threads:
        return omp
    return _default_threads


def default_threads():
    if not oxo_openmp_enabled():
        return 1  # a build without OpenMP runs every call on the calling thread
    cdef int n = _default_or_omp()
    return n if n > 0 else oxo_max_threads()


cdef inline bint _fast_bias(object bias, int typenum, cnp.npy_intp f):
    """None, or a plain C-contiguous (f,) array of the dtype."""
    if bias is None:
        return True
    if not _plain(bias, typenum) or cnp.PyArray_NDIM(<cnp.ndarray>bias) != 1:
        return False
    return cnp.PyArray_DIMS(<cnp.ndarray>bias)[0] == f and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>bias)


cdef inline int _fast_act(object activation):
    """The oxo_act code, or -1 (not the fast path)."""
    if activation is None:
        return 0
    if type(activation) is not str:
        return -1
    if activation == "relu":
        return 1
    if activation == "relu6":
        return 2
    return -1


cdef inline int _fast_threads(object n_threads):
    """The thread count to pass to C (0: the default), or -1 (not the fast path)."""
    if n_threads is None:
        return _default_or_omp()
    if type(n_threads) is int and 0 < n_threads <= 1024:
        return n_threads
    return -1


cdef inline object _fast_out(object out, int typenum, cnp.npy_intp *oshape, cnp.ndarray ax,
                             cnp.ndarray aw, object bias):
    """The 4-D result: a new array, or out when it is clean (plain, C-contiguous, writeable,
    of the shape, overlapping no input); None otherwise or when the new array cannot exist
    (the full checks raise the error that names the shape)."""
    if out is None:
        try:
            return cnp.PyArray_EMPTY(4, oshape, typenum, 0)
        except (MemoryError, ValueError):
            return None
    if not _plain(out, typenum) or cnp.PyArray_NDIM(<cnp.ndarray>out) != 4:
        return None
    cdef cnp.ndarray ao = <cnp.ndarray>out
    if not (cnp.PyArray_IS_C_CONTIGUOUS(ao) and cnp.PyArray_ISWRITEABLE(ao)):
        return None
    for i in range(4):
        if cnp.PyArray_DIMS(ao)[i] != oshape[i]:
            return None
    if _may_overlap(ao, ax) or _may_overlap(ao, aw) or (bias is not None and _may_overlap(ao, <cnp.ndarray>bias)):
        return None
    return ao


cdef inline bint _plain(object a, int typenum):
    """An ndarray of this dtype, native byte order, element-aligned."""
    if type(a) is not cnp.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return cnp.PyArray_TYPE(arr) == typenum and cnp.PyArray_ISNOTSWAPPED(arr) and cnp.PyArray_ISALIGNED(arr)


def conv1x1_fast(x, weight, bias, activation, out, n_threads, bint nhwc=False, int stride=1):
    if type(x) is not cnp.ndarray:
        return None
    cdef cnp.ndarray ax = <cnp.ndarray>x
    if stride != 1:  # NCHW only: the strided pixels as a view, read while packing
        if nhwc or stride < 1 or cnp.PyArray_NDIM(ax) != 4:
            return None
        ax = ax[:, :, ::stride, ::stride]
    cdef int typenum = cnp.PyArray_TYPE(ax)
    if (typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64) or cnp.PyArray_NDIM(ax) != 4:
        return None
    if not _plain(x, typenum) or not _plain(weight, typenum):
        return None
    if nhwc and not cnp.PyArray_IS_C_CONTIGUOUS(ax):  # the kernel wants the pixels in sequence
        return None
    cdef cnp.ndarray aw = <cnp.ndarray>weight
    cdef int wnd = cnp.PyArray_NDIM(aw)
    cdef cnp.npy_intp *ws = cnp.PyArray_DIMS(aw)
    if not (wnd == 2 or (wnd == 4 and ws[2] == 1 and ws[3] == 1)):
        return None
    cdef cnp.npy_intp *xs = cnp.PyArray_DIMS(ax)
    cdef cnp.npy_intp f = ws[0]
    if ws[1] != xs[3 if nhwc else 1]:
        return None
    if not _fast_bias(bias, typenum, f):
        return None
    cdef int act = _fast_act(activation)
    cdef int nt = _fast_threads(n_threads)
    if act < 0 or nt < 0:
        return None
    cdef cnp.npy_intp oshape[4]
    oshape[0] = xs[0]
    oshape[1] = xs[1] if nhwc else f
    oshape[2] = xs[2]
    oshape[3] = f if nhwc else xs[3]
    res = _fast_out(out, typenum, oshape, ax, aw, bias)
    if res is None:
        return None
    cdef cnp.ndarray ao = <cnp.ndarray>res
    w2 = aw if wnd == 2 else aw[:, :, 0, 0]
    if nhwc:  # the kernel sees x as (N, C, H, W) strides
        conv1x1(ax.transpose(0, 3, 1, 2), w2, bias, act, ao, nt, 1, True)
        return ao
    return conv1x1(ax, w2, bias, act, ao, nt)


cdef inline bint _may_overlap(cnp.ndarray a, cnp.ndarray b):
    """Conservative: do the memory extents of a (C-contiguous) and b intersect?"""
    cdef char *a0 = <char *>cnp.PyArray_DATA(a)
    cdef char *a1 = a0 + cnp.PyArray_NBYTES(a)
    cdef char *b0 = <char *>cnp.PyArray_DATA(b)
    cdef char *b1 = b0
    cdef int i
    cdef cnp.npy_intp extent
    for i in range(cnp.PyArray_NDIM(b)):
        if cnp.PyArray_DIMS(b)[i] == 0:
            return False
        extent = (cnp.PyArray_DIMS(b)[i] - 1) * cnp.PyArray_STRIDES(b)[i]
        if extent < 0:
            b0 += extent
        else:
            b1 += extent
    b1 += cnp.PyArray_ITEMSIZE(b)
    return a0 < b1 and b0 < a1


cdef inline void _matrix_strides(cnp.ndarray w, ptrdiff_t *s0, ptrdiff_t *s1):
    cdef ptrdiff_t item = cnp.PyArray_ITEMSIZE(w)
    s0[0] = cnp.PyArray_STRIDES(w)[0] // item
    s1[0] = cnp.PyArray_STRIDES(w)[1] // item


def conv1x1(cnp.ndarray x, cnp.ndarray w, bias, int act, cnp.ndarray out, int n_threads,
            size_t groups=1, bint nhwc=False):
    """out = act(conv1x1(x, w (F, C/groups)) + bias): x (N, C, H, W) and out (N, F, H, W), or
    with nhwc x an (N, C, H, W) view of an NHWC array (its pixels strided or cropped too) and
    out (N, H, W, F)."""
    cdef oxo_tensor4 tx
    _tensor4(x, &tx)
    cdef ptrdiff_t sw_f, sw_c
    _matrix_strides(w, &sw_f, &sw_c)
    cdef size_t f = cnp.PyArray_DIMS(w)[0]
    cdef const void *pb = NULL if bias is None else cnp.PyArray_DATA(<cnp.ndarray>bias)
    cdef void *py = cnp.PyArray_DATA(out)
    cdef const void *pw = cnp.PyArray_DATA(w)
    cdef oxo_dtype dt = _dtype_code(x)
    cdef int rc
    with nogil:
        if nhwc:
            rc = oxo_conv1x1_nhwc(dt, &tx, pw, sw_f, sw_c, f, groups, pb, act, py, n_threads)
        else:
            rc = oxo_conv1x1_nchw(dt, &tx, pw, sw_f, sw_c, f, groups, pb, act, py, n_threads)
    _check(rc)
    return out


def conv1x1_grad_x(cnp.ndarray dy, cnp.ndarray w, cnp.ndarray dx, bint nhwc, int n_threads,
                   size_t groups=1):
    """dx = W^T dy per group; dy as an (N, F, Ho, Wo) view, dx C-contiguous."""
    cdef oxo_tensor4 tdy
    _tensor4(dy, &tdy)
    cdef ptrdiff_t sw_f, sw_c
    _matrix_strides(w, &sw_f, &sw_c)
    cdef size_t c = cnp.PyArray_DIMS(dx)[3 if nhwc else 1]
    cdef const void *pw = cnp.PyArray_DATA(w)
    cdef void *pdx = cnp.PyArray_DATA(dx)
    cdef oxo_dtype dt = _dtype_code(dy)
    cdef int rc
    with nogil:
        rc = oxo_conv1x1_grad_x(dt, nhwc, &tdy, pw, sw_f, sw_c, c, groups, pdx, n_threads)
    _check(rc)
    return dx


def conv1x1_grad_w(cnp.ndarray dy, cnp.ndarray x, cnp.ndarray dw, int n_threads, size_t groups=1):
    """dw (F, C/groups) = sum over images of dy x^T per group; dy, x as (N, ., Ho, Wo) views."""
    cdef oxo_tensor4 tdy, tx
    _tensor4(dy, &tdy)
    _tensor4(x, &tx)
    cdef void *pdw = cnp.PyArray_DATA(dw)
    cdef oxo_dtype dt = _dtype_code(dy)
    cdef int rc
    with nogil:
        rc = oxo_conv1x1_grad_w(dt, &tdy, &tx, groups, pdw, n_threads)
    _check(rc)
    return dw


# ---- conv2d --------------------------------------------------------------------------------
# x (N, C, H, W) and out (N, F, Ho, Wo) as for conv1x1; w is the weight viewed as
# (F, C*KH*KW), any strides; geom = (kh, kw, sh, sw, ph, pw, dh, dw), the top/left padding
# (Ho, Wo come from out, so they carry any extra bottom/right padding).

ctypedef int (*_conv2d_fn)(oxo_dtype, const oxo_tensor4 *, const void *, ptrdiff_t, ptrdiff_t,
                          size_t, const oxo_conv2d_geom *, const void *, int, void *, int) nogil


cdef object _conv2d(_conv2d_fn fn, cnp.ndarray x, cnp.ndarray w, bias, tuple geom, int act,
                    cnp.ndarray out, int n_threads):
    cdef oxo_conv2d_geom g
    g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw = geom
    cdef ptrdiff_t item = cnp.PyArray_ITEMSIZE(w)
    return _conv2d_call(fn, x, w, cnp.PyArray_STRIDES(w)[0] // item, cnp.PyArray_STRIDES(w)[1] // item,
                        bias, &g, act, out, n_threads)


cdef object _conv2d_call(_conv2d_fn fn, cnp.ndarray x, cnp.ndarray w, ptrdiff_t rs_w, ptrdiff_t cs_w,
                         bias, oxo_conv2d_geom *g, int act, cnp.ndarray out, int n_threads):
    """The one C call: w is the weight, (F, C*KH*KW) through rs_w, cs_w; Ho, Wo from out."""
    cdef oxo_tensor4 tx
    _tensor4(x, &tx)
    g.ho = cnp.PyArray_DIMS(out)[2]
    g.wo = cnp.PyArray_DIMS(out)[3]
    cdef size_t f = cnp.PyArray_DIMS(w)[0]
    cdef const void *pb = NULL
    if bias is not None:
        pb = cnp.PyArray_DATA(<cnp.ndarray>bias)
    cdef void *py = cnp.PyArray_DATA(out)
    cdef const void *pw = cnp.PyArray_DATA(w)
    cdef oxo_dtype dt = _dtype_code(x)
    cdef int rc
    with nogil:
        rc = fn(dt, &tx, pw, rs_w, cs_w, f, g, pb, act, py, n_threads)
    _check(rc)
    return out


# the fast path's bound on stride, padding and dilation (larger values take the full checks)
cdef Py_ssize_t _FAST_MAX_GEOM = 1 << 30


def conv2d_fast(x, weight, bias, stride, padding, dilation, activation, out, algorithm, groups,
                n_threads):
    """onexone.conv2d's common call, recognized in about a microsecond (ndarrays of one float
    dtype, a C-contiguous 4-D weight, int stride/padding/dilation or padding "same"/"valid",
    no groups, a clean out or none, not a 1x1 kernel under "auto"); anything else returns None
    and the caller runs the full checks in _args.py, which own every error message."""
    if type(x) is not cnp.ndarray or type(weight) is not cnp.ndarray:
        return None
    cdef cnp.ndarray ax = <cnp.ndarray>x
    cdef cnp.ndarray aw = <cnp.ndarray>weight
    cdef int typenum = cnp.PyArray_TYPE(ax)
    if (typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64) or cnp.PyArray_NDIM(ax) != 4:
        return None
    if not _plain(x, typenum) or not _plain(weight, typenum) or cnp.PyArray_NDIM(aw) != 4:
        return None
    if not cnp.PyArray_IS_C_CONTIGUOUS(aw) or not (type(groups) is int and groups == 1):
        return None
    cdef cnp.npy_intp *xs = cnp.PyArray_DIMS(ax)
    cdef cnp.npy_intp *ws = cnp.PyArray_DIMS(aw)
    if ws[1] != xs[1] or not (0 < ws[2] <= _FAST_MAX_GEOM and 0 < ws[3] <= _FAST_MAX_GEOM):
        return None  # (a huge kernel side is a zero-size weight: the full path's errors)
    if type(stride) is not int or type(dilation) is not int or not (0 < stride <= _FAST_MAX_GEOM
                                                                     and 0 < dilation <= _FAST_MAX_GEOM):
        return None
    cdef oxo_conv2d_geom g
    g.kh, g.kw, g.sh, g.sw, g.dh, g.dw = ws[2], ws[3], stride, stride, dilation, dilation
    cdef ptrdiff_t eh = dilation * (ws[2] - 1) + 1, ew = dilation * (ws[3] - 1) + 1
    cdef ptrdiff_t pb_h, pb_w  # bottom/right padding
    if type(padding) is int and 0 <= padding <= _FAST_MAX_GEOM:
        g.ph = g.pw = pb_h = pb_w = padding
    elif type(padding) is not str:
        return None
    elif padding == "valid":
        g.ph = g.pw = pb_h = pb_w = 0
    elif padding == "same" and stride == 1:
        g.ph, g.pw = (eh - 1) // 2, (ew - 1) // 2
        pb_h, pb_w = eh - 1 - g.ph, ew - 1 - g.pw
    else:
        return None
    if xs[2] + g.ph + pb_h < eh or xs[3] + g.pw + pb_w < ew:
        return None
    cdef cnp.npy_intp f = ws[0]
    if not _fast_bias(bias, typenum, f):
        return None
    cdef int act = _fast_act(activation)
    cdef int nt = _fast_threads(n_threads)
    if act < 0 or nt < 0:
        return None
    cdef cnp.npy_intp oshape[4]
    oshape[0] = xs[0]
    oshape[1] = f
    oshape[2] = (xs[2] + g.ph + pb_h - eh) // stride + 1
    oshape[3] = (xs[3] + g.pw + pb_w - ew) // stride + 1
    res = _fast_out(out, typenum, oshape, ax, aw, bias)
    if res is None:
        return None
    cdef cnp.ndarray ao = <cnp.ndarray>res
    cdef oxo_tensor4 tx
    cdef _conv2d_fn fn
    if algorithm == "direct":
        fn = oxo_conv2d_direct_nchw
    elif algorithm == "im2col":
        fn = oxo_conv2d_im2col_nchw
    elif algorithm == "auto":
        if ws[2] == 1 and ws[3] == 1 and g.ph == 0 and g.pw == 0:
            return None  # the 1x1 GEMM path
        _tensor4(ax, &tx)
        g.ho, g.wo = oshape[2], oshape[3]
        fn = oxo_conv2d_direct_nchw if oxo_conv2d_prefer_direct(_dtype_code(ax), &tx, f, &g) else oxo_conv2d_im2col_nchw
    else:
        return None
    cdef ptrdiff_t k = ws[1] * ws[2] * ws[3]
    return _conv2d_call(fn, ax, aw, k, 1, bias, &g, act, ao, nt)


def conv2d_prefer_direct(cnp.ndarray x, tuple geom, cnp.ndarray out):
    """The rule of algorithm="auto": is the direct kernel expected to beat im2col here?"""
    cdef oxo_tensor4 tx
    _tensor4(x, &tx)
    cdef oxo_conv2d_geom g
    g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw = geom
    g.ho = cnp.PyArray_DIMS(out)[2]
    g.wo = cnp.PyArray_DIMS(out)[3]
    return bool(oxo_conv2d_prefer_direct(_dtype_code(x), &tx, cnp.PyArray_DIMS(out)[1], &g))


def conv2d_direct_nchw(cnp.ndarray x, cnp.ndarray w, bias, tuple geom, int act, cnp.ndarray out,
                       int n_threads):
    """out = act(conv2d(x, w) + bias) by the direct kernel (oxo_conv2d_direct_nchw)."""
    return _conv2d(oxo_conv2d_direct_nchw, x, w, bias, geom, act, out, n_threads)


def conv2d_depthwise_nchw(cnp.ndarray x, cnp.ndarray w, bias, tuple geom, int act, cnp.ndarray out,
                          int n_threads):
    """out = act(conv2d(x, w, groups=C) + bias), one input channel per group
    (oxo_conv2d_depthwise_nchw); w viewed as (F, KH*KW) with unit column stride."""
    return _conv2d(oxo_conv2d_depthwise_nchw, x, w, bias, geom, act, out, n_threads)


def conv2d_im2col_nchw(cnp.ndarray x, cnp.ndarray w, bias, tuple geom, int act, cnp.ndarray out,
                       int n_threads):
    """out = act(conv2d(x, w) + bias) by im2col blocks and the GEMM engine (oxo_conv2d_im2col_nchw)."""
    return _conv2d(oxo_conv2d_im2col_nchw, x, w, bias, geom, act, out, n_threads)


cdef inline void _geom(tuple geom, size_t ho, size_t wo, oxo_conv2d_geom *g):
    g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw = geom
    g.ho = ho
    g.wo = wo


def _conv2d_grouped(int direct, cnp.ndarray x, cnp.ndarray w, bias, tuple geom, int act,
                          cnp.ndarray out, int n_threads, size_t groups):
    """out = act(conv2d(x, w) + bias) with groups, w viewed as (F, C/groups*KH*KW), by the
    direct kernel (oxo_conv2d_direct_grouped_nchw) or im2col blocks (oxo_conv2d_im2col_grouped)."""
    cdef oxo_tensor4 tx
    _tensor4(x, &tx)
    cdef oxo_conv2d_geom g
    _geom(geom, cnp.PyArray_DIMS(out)[2], cnp.PyArray_DIMS(out)[3], &g)
    cdef ptrdiff_t rs_w, cs_w
    _matrix_strides(w, &rs_w, &cs_w)
    cdef size_t f = cnp.PyArray_DIMS(w)[0]
    cdef const void *pb = NULL if bias is None else cnp.PyArray_DATA(<cnp.ndarray>bias)
    cdef void *py = cnp.PyArray_DATA(out)
    cdef const void *pw = cnp.PyArray_DATA(w)
    cdef oxo_dtype dt = _dtype_code(x)
    cdef int rc
    with nogil:
        if direct:
            rc = oxo_conv2d_direct_grouped_nchw(dt, &tx, pw, rs_w, cs_w, f, &g, groups, pb, act, py, n_threads)
        else:
            rc = oxo_conv2d_im2col_grouped(dt, &tx, pw, rs_w, cs_w, f, &g, groups, pb, act, py, n_threads)
    _check(rc)


def conv2d_im2col_grouped(cnp.ndarray x, cnp.ndarray w, bias, tuple geom, int act,
                          cnp.ndarray out, int n_threads, size_t groups):
    """out = act(conv2d(x, w) + bias) with groups by im2col blocks and the GEMM engine."""
    _conv2d_grouped(0, x, w, bias, geom, act, out, n_threads, groups)
    return out


def conv2d_direct_grouped_nchw(cnp.ndarray x, cnp.ndarray w, bias, tuple geom, int act,
                               cnp.ndarray out, int n_threads, size_t groups):
    """out = act(conv2d(x, w) + bias) with groups by the direct kernel, every group and image
    in one parallel region."""
    _conv2d_grouped(1, x, w, bias, geom, act, out, n_threads, groups)
    return out


def conv2d_grad_w(cnp.ndarray dy, cnp.ndarray x, tuple geom, size_t groups, cnp.ndarray dw,
                  int n_threads):
    """dw (F, C/groups*KH*KW) = sum over images of dy @ im2col(x)^T, per group."""
    cdef oxo_tensor4 tdy, tx
    _tensor4(dy, &tdy)
    _tensor4(x, &tx)
    cdef oxo_conv2d_geom g
    _geom(geom, cnp.PyArray_DIMS(dy)[2], cnp.PyArray_DIMS(dy)[3], &g)
    cdef void *pdw = cnp.PyArray_DATA(dw)
    cdef oxo_dtype dt = _dtype_code(dy)
    cdef int rc
    with nogil:
        rc = oxo_conv2d_grad_w(dt, &tdy, &tx, &g, groups, pdw, n_threads)
    _check(rc)
    return dw


def conv2d_grad_x(cnp.ndarray dy, cnp.ndarray w, tuple geom, size_t groups, cnp.ndarray dx,
                  int n_threads):
    """dx (N, C, H, W) = col2im(W^T @ dy), per group; w viewed as (F, C/groups*KH*KW)."""
    cdef oxo_tensor4 tdy
    _tensor4(dy, &tdy)
    cdef oxo_conv2d_geom g
    _geom(geom, cnp.PyArray_DIMS(dy)[2], cnp.PyArray_DIMS(dy)[3], &g)
    cdef ptrdiff_t rs_w, cs_w
    _matrix_strides(w, &rs_w, &cs_w)
    cdef size_t c = cnp.PyArray_DIMS(dx)[1], h = cnp.PyArray_DIMS(dx)[2], wd = cnp.PyArray_DIMS(dx)[3]
    cdef const void *pw = cnp.PyArray_DATA(w)
    cdef void *pdx = cnp.PyArray_DATA(dx)
    cdef oxo_dtype dt = _dtype_code(dy)
    cdef int rc
    with nogil:
        rc = oxo_conv2d_grad_x(dt, &tdy, pw, rs_w, cs_w, &g, groups, c, h, wd, pdx, n_threads)
    _check(rc)
    return dx


# ---- configuration -------------------------------------------------------------------------

ISA_NAMES = tuple(oxo_isa_name(<oxo_isa>i).decode() for i in range(OXO_ISA_COUNT))


def isa_detected():
    """The best ISA this CPU and OS support (and this build has kernels for)."""
    return oxo_isa_name(oxo_isa_detected()).decode()


def isa_active():
    return oxo_isa_name(oxo_isa_active()).decode()


def isa_available():
    """Every ISA path this machine can run, lowest first."""
    return ISA_NAMES[: int(oxo_isa_detected()) + 1]


def set_isa(name):
    """Use the kernels of ISA ``name`` (one of isa_available(), any case) from now on."""
    if not isinstance(name, str):
        raise TypeError(f"set_isa: the ISA name must be a str, one of {ISA_NAMES}; got {name!r}")
    name = name.strip().lower()
    if name not in ISA_NAMES:
        raise ValueError(f"unknown ISA {name!r}; expected one of {ISA_NAMES}")
    cdef int code = ISA_NAMES.index(name)
    if oxo_isa_set(<oxo_isa>code) != OXO_OK:
        raise ValueError(
            f"ISA {name!r} is not available on this machine; available: {isa_available()}")


def kernel_names():
    cdef const oxo_kernels *k32 = oxo_kernels_for(oxo_isa_active(), OXO_F32)
    cdef const oxo_kernels *k64 = oxo_kernels_for(oxo_isa_active(), OXO_F64)
    return {"float32": k32.name.decode(), "float64": k64.name.decode()}


def narrow_kernel_names():
    """What GEMMs 21-24 columns wide run on, per dtype: the half-width set's name, "masked"
    where this core's 512-bit FMAs run at full width (the full set's tile, its second vector
    masked; probed once), or None where the ISA has no half-width set."""
    cdef const oxo_kernels *full
    cdef const oxo_kernels *k
    names = {}
    for key, dt in (("float32", OXO_F32), ("float64", OXO_F64)):
        full = oxo_kernels_for(oxo_isa_active(), dt)
        k = <const oxo_kernels *>full.narrow
        names[key] = None if k == NULL else "masked" if oxo_probe_full_width(full) else k.name.decode()
    return names


def tall_kernel_names():
    """What GEMMs at most one vector wide run on, per dtype: the tall set's name (more rows,
    one vector of columns), or None where the ISA has none or this core's 512-bit FMAs run at
    half width (probed once; they then run on the full set)."""
    cdef const oxo_kernels *full
    names = {}
    for key, dt in (("float32", OXO_F32), ("float64", OXO_F64)):
        full = oxo_kernels_for(oxo_isa_active(), dt)
        names[key] = _name_at_full_width(full, full.tall)
    return names


cdef object _name_at_full_width(const oxo_kernels *full, const void *sub):
    """sub's name where it is a set (not NULL) and this core's 512-bit FMAs run at full width
    (probed once: what oxo_gemm_run asks of the pairs, wide and tall sets), else None."""
    cdef const oxo_kernels *k = <const oxo_kernels *>sub
    if k == NULL or not oxo_probe_full_width(full):
        return None
    return k.name.decode()


def pairs_kernel_names():
    """What NHWC GEMMs of 17-24 and 5-8 columns run on, per dtype: the names of the pairs sets
    (vectors of 8 columns x 2 steps of K), or None where the ISA has none or this core's
    512-bit FMAs run at half width (probed once)."""
    cdef const oxo_kernels *full
    cdef const oxo_kernels *p
    names = {}
    for key, dt in (("float32", OXO_F32), ("float64", OXO_F64)):
        full = oxo_kernels_for(oxo_isa_active(), dt)
        p = <const oxo_kernels *>full.pairs
        name = _name_at_full_width(full, p)
        if name is not None and p.pairs != NULL:  # and the narrow pairs set after it
            name += " and " + (<const oxo_kernels *>p.pairs).name.decode()
        names[key] = name
    return names


def wide_kernel_names():
    """What GEMMs 64 or 128 columns wide with B packed (NHWC with F = 64 or 128) run on, per
    dtype: the wide set's name, or None where the ISA has none or this core's 512-bit FMAs
    run at half width (probed once)."""
    cdef const oxo_kernels *full
    names = {}
    for key, dt in (("float32", OXO_F32), ("float64", OXO_F64)):
        full = oxo_kernels_for(oxo_isa_active(), dt)
        names[key] = _name_at_full_width(full, full.wide)
    return names


def blocking():
    cdef oxo_blocking b32 = oxo_gemm_blocking(OXO_F32)
    cdef oxo_blocking b64 = oxo_gemm_blocking(OXO_F64)
    cdef const oxo_kernels *k32 = oxo_kernels_for(oxo_isa_active(), OXO_F32)
    cdef const oxo_kernels *k64 = oxo_kernels_for(oxo_isa_active(), OXO_F64)
    return {"float32": {"KC": b32.kc, "NC": b32.nc, "MR": k32.mr, "NR": k32.nr},
            "float64": {"KC": b64.kc, "NC": b64.nc, "MR": k64.mr, "NR": k64.nr}}


def l2_bytes():
    """One core's L2 cache in bytes as onexone sees it (1 MiB where the OS does not say)."""
    return oxo_l2_bytes()


def _narrow_mode(mode):
    """Tests only: GEMMs 21-24 columns wide on the half-width set (1), on masked full-width
    tiles (2), or as the FMA probe says (0, the default). The same results either way."""
    oxo_gemm_narrow_mode(int(mode))


def _allow_wide(allow):
    """Tests only: False runs GEMMs 64 or 128 columns wide with B packed (NHWC with F = 64 or
    128) on the full set's tile instead of the wide set's (the same results)."""
    oxo_gemm_allow_wide(1 if allow else 0)


def _pairs_mode(mode):
    """Tests only: GEMMs at most 24 columns wide with A contiguous along K (NHWC with F <= 24)
    run on the pairs set (AVX-512 float32) by the rule (0, the default), never (1) or wherever
    it fits (2). Results within rounding of each other."""
    oxo_gemm_pairs_mode(int(mode))


def _peel_mode(mode):
    """Tests only: B read in place past a vector boundary runs its first columns as a block
    of their own as the rule says (0, the default), always (1) or never (2). The same results
    either way."""
    oxo_gemm_peel_mode(int(mode))


def _allow_full_k(allow):
    """Tests only: False sends every GEMM through the KC-blocked route (the same results, but
    within rounding on the pairs sets, see _pairs_mode)."""
    oxo_gemm_allow_full_k(1 if allow else 0)


def _allow_tall(mode):
    """Tests only: GEMMs at most one vector wide run on the tall set's tile never (0 or False:
    the full kernel set's tile, the same results), where the rule says (1 or True, the
    default: only where 512-bit FMAs run at full width), or wherever the ISA has the set (2)."""
    oxo_gemm_allow_tall(int(mode))


def _full_k_runs():
    """Tests only: how many GEMMs took the full-K route in this process."""
    return oxo_gemm_full_k_runs()


def _allow_direct_fv(mode):
    """Tests only: the channel-vectorized direct kernel never (0 or False), where the rule
    says (1 or True, the default: only where 512-bit FMAs run at full width, see
    fv_full_width), wherever the ISA has one (2), or where the rule's shape tests say,
    whatever the FMA width (3)."""
    oxo_conv2d_allow_fv(int(mode))


def fv_full_width():
    """Whether the direct algorithm may use its channel-vectorized kernel here: the CPU's
    512-bit FMAs run at full width (the FMA probe: a 512-bit FMA costs no more than a 256-bit
    one). False without AVX-512 or where they take two passes (AMD Zen 4)."""
    return bool(oxo_conv2d_fv_width_ok())


def _direct_fv_runs():
    """Tests only: how many direct convolutions ran the channel-vectorized kernel."""
    return oxo_conv2d_fv_runs()


def openmp_enabled():
    return bool(oxo_openmp_enabled())


def openmp_library():
    cdef const char *name = oxo_openmp_library()
    return name.decode() if name != NULL else None


def max_threads():
    """omp_get_max_threads() of the calling thread (1 without OpenMP)."""
    return oxo_max_threads()


def peak_gflops(int n_threads=0, double seconds=0.2):
    """Measured fp32 FMA throughput of the active ISA on n_threads threads (0: default), GFLOP/s."""
    cdef double r
    with nogil:
        r = oxo_probe_peak_gflops(n_threads, seconds)
    return r
