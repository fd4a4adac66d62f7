// Exact fp32 matrix-vector products straight from GGUF Q4_1 / Q8_0 packed weights (AVX-512).
// Why: the bundled SmolLM2 weights *are* Q4_1/Q8_0 values, so reading 4-bit blocks instead of fp32 cuts memory
// traffic ~6x with bit-identical weights; activations and sums stay fp32, so greedy output matches the fp32 model.
// torch's own int4/int8 CPU kernels are only fast with bf16 activations, which changes the output.
// Built once per machine by assistant/models/exact_quant.py (torch.utils.cpp_extension, -march=native).
#include <torch/extension.h>
#include <torch/library.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <algorithm>

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

static torch::Tensor q4_1_dequant(torch::Tensor qs, torch::Tensor d, torch::Tensor m) {
  const int64_t N = qs.size(0), K = qs.size(1) * 2, nb = K / 32;
  auto w = torch::empty({N, K}, d.options());
  const uint8_t* Q = qs.data_ptr<uint8_t>(); const float* D = d.data_ptr<float>(); const float* Mn = m.data_ptr<float>(); float* W = w.data_ptr<float>();
  const __m128i mask = _mm_set1_epi8(0x0F);
  at::parallel_for(0, N * nb, 256, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      __m128i raw = _mm_loadu_si128((const __m128i*)(Q + b * 16));
      __m512 vd = _mm512_set1_ps(D[b]), vm = _mm512_set1_ps(Mn[b]);
      _mm512_storeu_ps(W + b * 32, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(raw, mask))), vd, vm));
      _mm512_storeu_ps(W + b * 32 + 16, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(raw, 4), mask))), vd, vm));
    }
  });
  return w;
}
static torch::Tensor q8_0_dequant(torch::Tensor qs, torch::Tensor d) {
  const int64_t N = qs.size(0), K = qs.size(1), nb = K / 32;
  auto w = torch::empty({N, K}, d.options());
  const int8_t* Q = qs.data_ptr<int8_t>(); const float* D = d.data_ptr<float>(); float* W = w.data_ptr<float>();
  at::parallel_for(0, N * nb, 256, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      __m512 vd = _mm512_set1_ps(D[b]);
      _mm512_storeu_ps(W + b * 32, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(Q + b * 32)))), vd));
      _mm512_storeu_ps(W + b * 32 + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(Q + b * 32 + 16)))), vd));
    }
  });
  return w;
}
static const int64_t BIG_M = 8;  // for M >= BIG_M (prefill): dequantise to fp32 and use the BLAS sgemm (same numerics as fp32 model)

torch::Tensor q4_1_mm(torch::Tensor x, torch::Tensor qs, torch::Tensor d, torch::Tensor m) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && x.dim() == 2);
  x = x.contiguous();
  const int64_t M = x.size(0), K = x.size(1), N = qs.size(0), nb = K / 32;
  TORCH_CHECK(K % 32 == 0 && qs.size(1) == K / 2 && d.size(1) == nb);
  if (M >= BIG_M) return at::mm(x, q4_1_dequant(qs, d, m).t());
  auto out = torch::empty({M, N}, x.options());
  const float* X = x.data_ptr<float>(); const uint8_t* Q = qs.data_ptr<uint8_t>();
  const float* D = d.data_ptr<float>(); const float* Mn = m.data_ptr<float>(); float* Y = out.data_ptr<float>();
  at::parallel_for(0, N, 64, [&](int64_t n0, int64_t n1) {
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
  if (M >= BIG_M) return at::mm(x, q8_0_dequant(qs, d).t());
  auto out = torch::empty({M, N}, x.options());
  const float* X = x.data_ptr<float>(); const int8_t* Q = qs.data_ptr<int8_t>();
  const float* D = d.data_ptr<float>(); float* Y = out.data_ptr<float>();
  at::parallel_for(0, N, 256, [&](int64_t n0, int64_t n1) {
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
  m.def("q4_1_dequant(Tensor qs, Tensor d, Tensor m) -> Tensor");
  m.def("q8_0_dequant(Tensor qs, Tensor d) -> Tensor");
}
TORCH_LIBRARY_IMPL(ragtune_qmm, CPU, m) {
  m.impl("q4_1_mm", &q4_1_mm);
  m.impl("q8_0_mm", &q8_0_mm);
  m.impl("q4_1_dequant", &q4_1_dequant);
  m.impl("q8_0_dequant", &q8_0_dequant);
}
