# Every dependency comes from Debian's packages (scripts/install-deps.sh).
find_package(Threads REQUIRED)
find_package(xtl REQUIRED)
find_package(xtensor REQUIRED)
find_package(xsimd REQUIRED)  # SIMD kernels (ops/simd.hpp), private to the library
find_package(fmt REQUIRED)
find_package(ZLIB REQUIRED)
find_package(CURL REQUIRED)
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
find_package(nlohmann_json REQUIRED)

# OpenBLAS through its CMake config when present, else the plain library and cblas.h.
find_library(TG_OPENBLAS_LIBRARY NAMES openblas REQUIRED)
find_path(TG_CBLAS_INCLUDE_DIR NAMES cblas.h PATH_SUFFIXES openblas-pthread openblas REQUIRED)
add_library(tg_blas INTERFACE)
target_link_libraries(tg_blas INTERFACE ${TG_OPENBLAS_LIBRARY})
target_include_directories(tg_blas INTERFACE ${TG_CBLAS_INCLUDE_DIR})

# oneDNN (Debian's libdnnl-dev, the build PyTorch uses) for float32 convolutions with many input
# channels (ops/conv_dnnl.cpp). Its CPU runtime is OpenMP; the OpenMP API is used only to keep
# it on one thread per call (tapegrad splits the batch itself).
find_package(dnnl CONFIG REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
