// Exact fp32 matrix-vector products straight from GGUF Q4_1 / Q8_0 packed weights (AVX-512).
// Why: the bundled SmolLM2 weights *are* Q4_1/Q8_0 values, so reading 4-bit blocks instead of fp32 cuts memory
// traffic ~6x with bit-identical weights; activations and sums stay fp32, so greedy output matches the fp32 model.
// torch's own int4/int8 CPU kernels are only fast with bf16 activations, which changes the output.
// Built once per machine by assistant/models/exact_quant.py (torch.utils.cpp_extension, -march=native).
#include <torch/extension.h>
#include <torch/library.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <immintrin.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

// torch's own ops (OpenMP, MKL) in the calling thread only on `threads` threads; returns the previous count.
// at::set_num_threads would also change torch's default for every thread started later. Weak: a torch build
// without these libraries simply keeps its threads.
extern "C" {
__attribute__((weak)) void omp_set_num_threads(int);
__attribute__((weak)) int MKL_Set_Num_Threads_Local(int);  // the C entry (lower case is Fortran's, by pointer)
}
static int64_t torch_threads_here(int64_t threads) {
  at::internal::lazy_init_num_threads();  // or torch's first parallel op in this thread would reset the count
  const int64_t before = at::get_num_threads();
  if (omp_set_num_threads) omp_set_num_threads(static_cast<int>(threads));
  if (MKL_Set_Num_Threads_Local) MKL_Set_Num_Threads_Local(static_cast<int>(threads));
  return before;
}

// A tiny fork-join pool of its own, not OpenMP: generation runs in a worker thread, and once a second thread has
// started an OpenMP team, libgomp stops spinning between regions (more threads than cores) and every one of the
// ~200 matmuls of a decoded token pays a futex wake-up — slower than serial code (docs/BENCHMARKS.md). Here the
// caller takes the first share itself and helpers spin between jobs for a few milliseconds (matmuls of one token
// come tens of microseconds apart), then sleep on a condition variable, so an idle model costs no CPU.
// Two spinning pools on the same cores (torch's OpenMP team and this) slow each other ~10x, so the pool only
// serves callers whose torch ops run on one thread (cpu_speed.DecodeThreads arranges that while decoding).
class SpinPool {
 public:
  explicit SpinPool(int helpers) : helpers_(helpers) {
    for (int i = 0; i < helpers; i++) {
      std::thread([this, i] {
        torch_threads_here(1);  // a helper's torch ops (its share of a prefill sgemm) start no threads of their own
        loop(i + 1);
      }).detach();  // lives as long as the process
    }
  }
  // fn(begin, end) over [0, n) in contiguous shares of at least `grain`; serial when the pool is busy elsewhere.
  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    const int64_t shares = std::min<int64_t>(helpers_ + 1, std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (shares == 1 || !busy.owns_lock()) { fn(0, n); return; }
    fn_ = &fn; n_ = n; shares_ = shares; error_ = nullptr;
    pending_.store(helpers_, std::memory_order_seq_cst);
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_seq_cst) > 0) { std::lock_guard<std::mutex> lock(sleep_); wake_.notify_all(); }
    std::exception_ptr mine;
    try { share(0); } catch (...) { mine = std::current_exception(); }
    while (pending_.load(std::memory_order_acquire) > 0) _mm_pause();  // fn and its captures live on our stack
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void share(int64_t index) {
    const int64_t begin = n_ * index / shares_, end = n_ * (index + 1) / shares_;
    if (begin < end) (*fn_)(begin, end);
  }
  void loop(int index) {
    uint64_t seen = 0;
    for (;;) {
      auto spin_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(5);
      for (int spins = 0; epoch_.load(std::memory_order_acquire) == seen; spins++) {
        _mm_pause();
        if ((spins & 1023) == 1023 && std::chrono::steady_clock::now() > spin_until) {
          std::unique_lock<std::mutex> lock(sleep_);
          sleeping_.fetch_add(1, std::memory_order_seq_cst);
          wake_.wait(lock, [&] { return epoch_.load(std::memory_order_seq_cst) != seen; });
          sleeping_.fetch_sub(1, std::memory_order_seq_cst);
        }
      }
      seen = epoch_.load(std::memory_order_acquire);
      if (index < shares_) {
        try { share(index); } catch (...) { error_ = std::current_exception(); }  // rethrown by the caller
      }
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }
  const int helpers_;
  std::mutex busy_, sleep_;
  std::condition_variable wake_;
  std::atomic<uint64_t> epoch_{0};
  std::atomic<int> pending_{0}, sleeping_{0};
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, shares_ = 1;
  std::exception_ptr error_;  // one helper at most on the machines this targets; the last error wins otherwise
};

static std::mutex pool_lock;
static SpinPool* pool = nullptr;  // never freed: its detached helpers outlive every caller
static pid_t pool_pid = 0;
static int pool_threads = 1;

static void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  SpinPool* current;
  {
    std::lock_guard<std::mutex> lock(pool_lock);
    if (pool_threads > 1 && (pool == nullptr || pool_pid != getpid())) {  // a forked child has no helper threads
      pool = new SpinPool(pool_threads - 1);
      pool_pid = getpid();
    }
    current = pool_threads > 1 ? pool : nullptr;
  }
  if (current == nullptr || at::get_num_threads() > 1) fn(0, n); else current->run(n, grain, fn);
}

// Threads the kernels use (the caller included); set once from Python with the model's thread setting.
static void set_threads(int64_t threads) {
  std::lock_guard<std::mutex> lock(pool_lock);
  if (threads != pool_threads) { pool = nullptr; pool_threads = std::max<int64_t>(1, threads); }
}

// Q4_1: per (row, block of 32): w[j] = d*q[j] + m, byte j of the 16-byte block = q[j] | q[j+16]<<4
template<int MT>
static inline void q4_tile(const float* X, int64_t K, const uint8_t* qr, const float* dr, const float* mr,
                           int64_t nb, float* Y, int64_t N, int64_t n) {
  const __m128i mask = _mm_set1_epi8(0x0F);
  __m512 a0[MT], a1[MT];
  for (int i = 0; i < MT; i++) { a0[i] = _mm512_setzero_ps(); a1[i] = _mm512_setzero_ps(); }
  for (int64_t b = 0; b < nb; b++) {
    __m128i raw = _mm_loadu_si128((const __m128i*)(qr + b * 16));
    __m128i lo = _mm_and_si128(raw, mask);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
    __m512 vd = _mm512_set1_ps(dr[b]), vm = _mm512_set1_ps(mr[b]);
    __m512 w0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(lo)), vd, vm);
    __m512 w1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hi)), vd, vm);
    for (int i = 0; i < MT; i++) {
      const float* xr = X + i * K + b * 32;
      a0[i] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xr), a0[i]);
      a1[i] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr + 16), a1[i]);
    }
  }
  for (int i = 0; i < MT; i++) Y[i * N + n] = _mm512_reduce_add_ps(_mm512_add_ps(a0[i], a1[i]));
}
// Q8_0: w[j] = d*q[j], q int8
template<int MT>
static inline void q8_tile(const float* X, int64_t K, const int8_t* qr, const float* dr,
                           int64_t nb, float* Y, int64_t N, int64_t n) {
  __m512 a0[MT], a1[MT];
  for (int i = 0; i < MT; i++) { a0[i] = _mm512_setzero_ps(); a1[i] = _mm512_setzero_ps(); }
  for (int64_t b = 0; b < nb; b++) {
    __m512 vd = _mm512_set1_ps(dr[b]);
    __m512 w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(qr + b * 32)))), vd);
    __m512 w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(qr + b * 32 + 16)))), vd);
    for (int i = 0; i < MT; i++) {
      const float* xr = X + i * K + b * 32;
      a0[i] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xr), a0[i]);
      a1[i] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr + 16), a1[i]);
    }
  }
  for (int i = 0; i < MT; i++) Y[i * N + n] = _mm512_reduce_add_ps(_mm512_add_ps(a0[i], a1[i]));
}

// Dequantise rows [n0, n1) into W (row-major, K values a row).
static void q4_1_rows(const uint8_t* Q, const float* D, const float* Mn, int64_t nb, int64_t n0, int64_t n1, float* W) {
  const __m128i mask = _mm_set1_epi8(0x0F);
  for (int64_t b = n0 * nb; b < n1 * nb; b++, W += 32) {
    __m128i raw = _mm_loadu_si128((const __m128i*)(Q + b * 16));
    __m512 vd = _mm512_set1_ps(D[b]), vm = _mm512_set1_ps(Mn[b]);
    _mm512_storeu_ps(W, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(raw, mask))), vd, vm));
    _mm512_storeu_ps(W + 16, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(raw, 4), mask))), vd, vm));
  }
}
static void q8_0_rows(const int8_t* Q, const float* D, int64_t nb, int64_t n0, int64_t n1, float* W) {
  for (int64_t b = n0 * nb; b < n1 * nb; b++, W += 32) {
    __m512 vd = _mm512_set1_ps(D[b]);
    _mm512_storeu_ps(W, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(Q + b * 32)))), vd));
    _mm512_storeu_ps(W + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(Q + b * 32 + 16)))), vd));
  }
}

// Prefill (M >= BIG_M rows): dequantise to fp32 and use the BLAS sgemm — the fp32 model's own numerics. With the
// pool, each share dequantises and multiplies its own output columns; otherwise torch's threads run one sgemm.
static const int64_t BIG_M = 8;
template <typename DequantRows>
static torch::Tensor prefill(const torch::Tensor& x, int64_t N, DequantRows dequant_rows) {
  auto out = torch::empty({x.size(0), N}, x.options());
  const at::ThreadLocalState caller_state;  // inference mode, grad mode…: torch ops in a helper need the caller's
  auto share = [&](int64_t n0, int64_t n1) {
    at::ThreadLocalStateGuard same_state(caller_state);
    auto w = torch::empty({n1 - n0, x.size(1)}, x.options());
    dequant_rows(n0, n1, w.data_ptr<float>());
    auto columns = out.narrow(1, n0, n1 - n0);
    at::mm_out(columns, x, w.t());
  };
  parallel_for(N, 64, share);
  return out;
}

torch::Tensor q4_1_mm(torch::Tensor x, torch::Tensor qs, torch::Tensor d, torch::Tensor m) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && x.dim() == 2);
  x = x.contiguous();
  const int64_t M = x.size(0), K = x.size(1), N = qs.size(0), nb = K / 32;
  TORCH_CHECK(K % 32 == 0 && qs.size(1) == K / 2 && d.size(1) == nb);
  const uint8_t* Q = qs.data_ptr<uint8_t>(); const float* D = d.data_ptr<float>(); const float* Mn = m.data_ptr<float>();
  if (M >= BIG_M) return prefill(x, N, [&](int64_t n0, int64_t n1, float* W) { q4_1_rows(Q, D, Mn, nb, n0, n1, W); });
  auto out = torch::empty({M, N}, x.options());
  const float* X = x.data_ptr<float>(); float* Y = out.data_ptr<float>();
  parallel_for(N, 64, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const uint8_t* qr = Q + n * nb * 16; const float* dr = D + n * nb; const float* mr = Mn + n * nb;
      int64_t m0 = 0;
      for (; m0 + 4 <= M; m0 += 4) q4_tile<4>(X + m0 * K, K, qr, dr, mr, nb, Y + m0 * N, N, n);
      switch (M - m0) {
        case 1: q4_tile<1>(X + m0 * K, K, qr, dr, mr, nb, Y + m0 * N, N, n); break;
        case 2: q4_tile<2>(X + m0 * K, K, qr, dr, mr, nb, Y + m0 * N, N, n); break;
        case 3: q4_tile<3>(X + m0 * K, K, qr, dr, mr, nb, Y + m0 * N, N, n); break;
        default: break;
      }
    }
  });
  return out;
}
torch::Tensor q8_0_mm(torch::Tensor x, torch::Tensor qs, torch::Tensor d) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && x.dim() == 2);
  x = x.contiguous();
  const int64_t M = x.size(0), K = x.size(1), N = qs.size(0), nb = K / 32;
  TORCH_CHECK(K % 32 == 0 && qs.size(1) == K && d.size(1) == nb);
  const int8_t* Q = qs.data_ptr<int8_t>(); const float* D = d.data_ptr<float>();
  if (M >= BIG_M) return prefill(x, N, [&](int64_t n0, int64_t n1, float* W) { q8_0_rows(Q, D, nb, n0, n1, W); });
  auto out = torch::empty({M, N}, x.options());
  const float* X = x.data_ptr<float>(); float* Y = out.data_ptr<float>();
  parallel_for(N, 256, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const int8_t* qr = Q + n * K; const float* dr = D + n * nb;
      int64_t m0 = 0;
      for (; m0 + 4 <= M; m0 += 4) q8_tile<4>(X + m0 * K, K, qr, dr, nb, Y + m0 * N, N, n);
      switch (M - m0) {
        case 1: q8_tile<1>(X + m0 * K, K, qr, dr, nb, Y + m0 * N, N, n); break;
        case 2: q8_tile<2>(X + m0 * K, K, qr, dr, nb, Y + m0 * N, N, n); break;
        case 3: q8_tile<3>(X + m0 * K, K, qr, dr, nb, Y + m0 * N, N, n); break;
        default: break;
      }
    }
  });
  return out;
}

TORCH_LIBRARY(ragtune_qmm, m) {
  m.def("q4_1_mm(Tensor x, Tensor qs, Tensor d, Tensor m) -> Tensor");
  m.def("q8_0_mm(Tensor x, Tensor qs, Tensor d) -> Tensor");
  // No tensor arguments: one kernel for every device.
  m.def("set_threads(int threads) -> ()", &set_threads);
  m.def("torch_threads_here(int threads) -> int", &torch_threads_here);
}
TORCH_LIBRARY_IMPL(ragtune_qmm, CPU, m) {
  m.impl("q4_1_mm", &q4_1_mm);
  m.impl("q8_0_mm", &q8_0_mm);
}
