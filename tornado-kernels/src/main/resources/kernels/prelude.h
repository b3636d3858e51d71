/*
 * Portable kernel dialect: every kernels/<family>.cl is written once against these macros and builds as OpenCL C
 * (clBuildProgram, PoCL included) and as CUDA C++ (NVRTC), which defines JD_CUDA before this prelude.
 * Index helpers take the dimension as 0, 1 or 2. Offsets that can pass 2^31 elements use `long` (64-bit in both).
 * fp16 buffers are `half_t*` and are read/written only through LDH/STH (no half arithmetic, so no cl_khr_fp16 needed).
 */
#ifdef JD_CUDA
#define KERNEL extern "C" __global__
#define GLOBAL
#define CONSTANT
#define LOCAL_ARRAY(type, name, n) __shared__ type name[n]
#define LOCAL_PTR
#define BARRIER() __syncthreads()
#define INLINE __device__ __forceinline__
__device__ __forceinline__ int jd_gid(int d) { return d == 0 ? (int)(blockIdx.x * blockDim.x + threadIdx.x) : d == 1 ? (int)(blockIdx.y * blockDim.y + threadIdx.y) : (int)(blockIdx.z * blockDim.z + threadIdx.z); }
__device__ __forceinline__ int jd_lid(int d) { return d == 0 ? (int)threadIdx.x : d == 1 ? (int)threadIdx.y : (int)threadIdx.z; }
__device__ __forceinline__ int jd_group(int d) { return d == 0 ? (int)blockIdx.x : d == 1 ? (int)blockIdx.y : (int)blockIdx.z; }
__device__ __forceinline__ int jd_lsize(int d) { return d == 0 ? (int)blockDim.x : d == 1 ? (int)blockDim.y : (int)blockDim.z; }
__device__ __forceinline__ int jd_ngroups(int d) { return d == 0 ? (int)gridDim.x : d == 1 ? (int)gridDim.y : (int)gridDim.z; }
#define GID(d) jd_gid(d)
#define LID(d) jd_lid(d)
#define GROUP(d) jd_group(d)
#define LSIZE(d) jd_lsize(d)
#define NGROUPS(d) jd_ngroups(d)
typedef unsigned short half_t;
__device__ __forceinline__ float jd_h2f(unsigned short h) { float f; asm("{ cvt.f32.f16 %0, %1; }" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ unsigned short jd_f2h(float f) { unsigned short h; asm("{ cvt.rn.f16.f32 %0, %1; }" : "=h"(h) : "f"(f)); return h; }
#define LDH(p, i) jd_h2f((p)[i])
#define STH(p, i, v) ((p)[i] = jd_f2h(v))
#define EXP(x) expf(x)
#define RSQRT(x) rsqrtf(x)
#define ERF(x) erff(x)
#define FMAX(a, b) fmaxf(a, b)
#define FMIN(a, b) fminf(a, b)
#define SQRT(x) sqrtf(x)
#define SIN(x) sinf(x)
#define COS(x) cosf(x)
#define FABS(x) fabsf(x)
#define INFINITY_F __int_as_float(0x7f800000)
#else
#define KERNEL __kernel
#define GLOBAL __global
#define CONSTANT __constant
#define LOCAL_ARRAY(type, name, n) __local type name[n]
#define LOCAL_PTR __local
#define BARRIER() barrier(CLK_LOCAL_MEM_FENCE)
#define INLINE inline
#define GID(d) ((int)get_global_id(d))
#define LID(d) ((int)get_local_id(d))
#define GROUP(d) ((int)get_group_id(d))
#define LSIZE(d) ((int)get_local_size(d))
#define NGROUPS(d) ((int)get_num_groups(d))
typedef half half_t;
#define LDH(p, i) vload_half((i), (p))
#define STH(p, i, v) vstore_half((v), (i), (p))
#define EXP(x) exp(x)
#define RSQRT(x) rsqrt(x)
#define ERF(x) erf(x)
#define FMAX(a, b) fmax(a, b)
#define FMIN(a, b) fmin(a, b)
#define SQRT(x) sqrt(x)
#define SIN(x) sin(x)
#define COS(x) cos(x)
#define FABS(x) fabs(x)
#define INFINITY_F INFINITY
#endif

/* Plane kernels (elementwise, resample, group_norm_apply): a work group per (plane, chunk of PLANE_CHUNK positions) with
 * 32-bit offsets inside the plane, so no element pays a division by the plane size; launch global (planes *
 * cover(positions, PLANE_CHUNK) / PLANE_CHUNK * LSIZE), local LSIZE (Elementwise.planes). PLANE_SETUP(positions)
 * declares this group's plane (long) and its positions [from_, to_). */
#define PLANE_CHUNK 2048
#define PLANE_SETUP(positions)                                                          \
    int chunks_ = ((positions) + PLANE_CHUNK - 1) / PLANE_CHUNK;                       \
    long plane = (long)GROUP(0) / chunks_;                                              \
    int from_ = (int)((long)GROUP(0) - plane * chunks_) * PLANE_CHUNK;                  \
    int to_ = from_ + PLANE_CHUNK < (positions) ? from_ + PLANE_CHUNK : (positions);
