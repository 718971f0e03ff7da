/*
 * blas.c - OpenBLAS core-type check for the training engine.
 *
 * Debian's OpenBLAS is a DYNAMIC_ARCH build that picks its kernels from the
 * CPUID family/model. Inside some VMs the model is masked ("Intel(R) Xeon(R)
 * Processor") and it falls back to the SSE3 "Prescott" kernels although the
 * CPU has AVX2 / AVX-512: measured here, sgemm then runs ~2x slower. The
 * choice is made when the library loads, so the fix is to set
 * OPENBLAS_CORETYPE and re-execute the program (sst_blas_reexec).
 */
#include "engine.h"

#include <stdlib.h>
#include <unistd.h>

int sst_blas_reexec(char **argv) {
#ifdef __linux__
    const char *hint = ss_blas_coretype_hint();
    if (!hint || !argv || getenv("OPENBLAS_CORETYPE")) return 0;
    if (setenv("OPENBLAS_CORETYPE", hint, 1) != 0) return -1;
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE");
    return -1; /* exec failed: carry on with the generic kernels */
#else
    (void)argv;
    return 0;
#endif
}
