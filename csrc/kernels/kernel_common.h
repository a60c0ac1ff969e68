/* kernel_common.h: what every micro-kernel file shares. */
#ifndef ONEXONE_KERNEL_COMMON_H
#define ONEXONE_KERNEL_COMMON_H
#include "../onexone.h"

/* ReLU / ReLU6 on a scalar, NaN-propagating like np.maximum/np.minimum (a NaN compares
 * false, so it falls through unchanged). */
#define oxo_activate_scalar_(s, act)                                                           \
    ((act) == OXO_ACT_RELU    ? ((s) < 0 ? 0 : (s))                                            \
     : (act) == OXO_ACT_RELU6 ? ((s) < 0 ? 0 : ((s) > 6 ? 6 : (s)))                            \
                              : (s))

#endif
