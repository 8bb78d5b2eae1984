#pragma once
// Internal: SIMD loops over float arrays with xsimd, on the widest instruction set the library
// is compiled for (AVX-512 with -march=native here), each with a scalar tail. The vector
// functors take and return xsimd::batch<T>; the scalar ones take and return T. Element types
// without a SIMD path (int64, or no SIMD at all) run the scalar functor on every element.
#include <cmath>
#include <cstddef>
#include <type_traits>

// GCC 12 flags the _mm512_undefined_* idiom inside its own intrinsics headers as
// maybe-uninitialized (GCC bug 105593); the state that counts is the one where those headers
// are read, so it is silenced around this include.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <xsimd/xsimd.hpp>
#pragma GCC diagnostic pop
