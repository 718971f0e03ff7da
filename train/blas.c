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
#include <string.h>
#include <unistd.h>

#ifdef SS_HAVE_CBLAS
char *openblas_get_corename(void);
#endif

const char *sst_blas_coretype_hint(void) {
#if defined(SS_HAVE_CBLAS) && (defined(__x86_64__) || defined(__i386__)) && \
    defined(__GNUC__)
    static const char *generic[] = {"Prescott", "Core2", "Penryn", "Nehalem",
                                    "Dunnington", "Atom", "Sandybridge"};
    const char *core = openblas_get_corename();
    int is_generic = 0;
    for (size_t i = 0; core && i < sizeof generic / sizeof *generic; i++)
        if (strcmp(core, generic[i]) == 0) is_generic = 1;
    if (!is_generic) return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
#endif
    return NULL;
}

int sst_blas_reexec(char **argv) {
#ifdef __linux__
    const char *hint = sst_blas_coretype_hint();
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
