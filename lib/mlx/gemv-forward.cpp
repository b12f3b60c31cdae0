// Matrix products with one row or one column, sent to the BLAS's gemv: see lib/mlx/gemv.ts.
// Preloaded (LD_PRELOAD) into the scripts' processes, this cblas_sgemm stands in front of the one in
// libblas.so.3, which MLX calls for every float32 matmul on the CPU. A product with one row (or one
// column) is a matrix-vector product; it goes to that same library's cblas_sgemv, everything else to
// its cblas_sgemm unchanged. Row-major only (what MLX passes); any other call is passed on as it is.
#include <dlfcn.h>
#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace {

enum { RowMajor = 101, NoTrans = 111, Trans = 112 };
using Gemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
using Gemv = void (*)(int, int, int, int, float, const float*, int, const float*, int, float, float*, int);

struct Blas {
  Gemm gemm;
  Gemv gemv;
};

// The library MLX links (by the same name, so the loader returns the instance already loaded).
// Resolved on the first call; a function-local static is initialised once, whichever thread calls.
const Blas& blas() {
  static const Blas found = [] {
    void* lib = dlopen("libblas.so.3", RTLD_NOW | RTLD_LOCAL);
    Blas b{lib ? reinterpret_cast<Gemm>(dlsym(lib, "cblas_sgemm")) : nullptr,
           lib ? reinterpret_cast<Gemv>(dlsym(lib, "cblas_sgemv")) : nullptr};
    if (!b.gemm || !b.gemv) {
      std::fprintf(stderr, "sft-mlx: libblas.so.3 has no cblas_sgemm/cblas_sgemv to forward to (%s); "
                           "set SFT_MLX_GEMV=0 to run without lib/mlx/gemv-forward.cpp\n", dlerror());
      std::abort();
    }
    return b;
  }();
  return found;
}

std::atomic<long> forwarded{0};
std::atomic<int> enabled{1};

// y (n values, stride incy) = 0 before a gemv with beta = 0: the product must not read what the
// output held (MLX's outputs are uninitialised; NaN · 0 is NaN wherever a BLAS scales instead of sets).
void zero(float* y, int n, int incy) {
  for (long i = 0; i < n; i++) y[i * incy] = 0.0f;
}

}  // namespace

extern "C" {

/** The interface's version: lib/mlx/gemv.ts checks it in a library it has built. */
int sftmlx_gemv_version() { return 1; }

/** How many products went to gemv so far (tests, the doctor). */
long sftmlx_gemv_forwarded() { return forwarded.load(std::memory_order_relaxed); }

/** 0: pass every call to cblas_sgemm (same-process comparisons); 1: forward one-row products. */
void sftmlx_gemv_enable(int on) { enabled.store(on, std::memory_order_relaxed); }

// C[M, N] = alpha · op(A)[M, K] · op(B)[K, N] + beta · C, row-major.
void cblas_sgemm(int order, int ta, int tb, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc) {
  const Blas& b = blas();
  if (order == RowMajor && enabled.load(std::memory_order_relaxed) && M > 0 && N > 0 && K > 0 && (M == 1 || N == 1)) {
    if (M == 1) {
      // C's one row = op(B)ᵀ · x, x = op(A)'s one row: A[0, k] (ta: A is [K, 1], A[k · lda]).
      const int incx = ta == NoTrans ? 1 : lda;
      const bool ok = incx >= 1 && (tb == NoTrans ? ldb >= N : ldb >= K);
      if (ok) {
        if (beta == 0.0f) zero(C, N, 1);
        if (tb == NoTrans) b.gemv(RowMajor, Trans, K, N, alpha, B, ldb, A, incx, beta, C, 1);  // B is [K, N]
        else b.gemv(RowMajor, NoTrans, N, K, alpha, B, ldb, A, incx, beta, C, 1);  // B is [N, K]
        forwarded.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    } else {
      // C's one column (stride ldc) = op(A) · x, x = op(B)'s one column: B[k · ldb] (tb: B is [1, K]).
      const int incx = tb == NoTrans ? ldb : 1;
      const bool ok = incx >= 1 && ldc >= 1 && (ta == NoTrans ? lda >= K : lda >= M);
      if (ok) {
        if (beta == 0.0f) zero(C, M, ldc);
        if (ta == NoTrans) b.gemv(RowMajor, NoTrans, M, K, alpha, A, lda, B, incx, beta, C, ldc);  // A is [M, K]
        else b.gemv(RowMajor, Trans, K, M, alpha, A, lda, B, incx, beta, C, ldc);  // A is [K, M]
        forwarded.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    }
  }
  b.gemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // extern "C"
