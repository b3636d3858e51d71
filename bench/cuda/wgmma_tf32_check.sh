#!/usr/bin/env bash
# Builds and runs bench/cuda/wgmma_tf32_check.cu (check + benchmark of gemm_wgmma.cu's TF32 GEMM, GEGLU and conv against
# fp32 references and gemm_mma_tf32 / gemm_mma_geglu_tf32 / conv2d_v3_tf32; fp16 wgmma re-timed; NVRTC build of the
# module) on an sm_90 GPU. Usage, in the repository root: bash bench/cuda/wgmma_tf32_check.sh [parts [conv-case-filter]]
# (parts: gemm,geglu,conv = all). BIN=path runs a prebuilt binary (nvcc -gencode=arch=compute_90a,code=sm_90a).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
kernels=tornado-kernels/src/main/resources/kernels
bin=${BIN:-}
if [ -z "$bin" ]; then
    bin=/tmp/wgmma_tf32_check
    # -gencode, not -arch=sm_90a: nvcc 13.0's shorthand also runs a plain sm_90 pass that rejects wgmma
    "$NVCC" -gencode=arch=compute_90a,code=sm_90a -O3 -std=c++17 -Xptxas -v -I "$kernels" -o "$bin" bench/cuda/wgmma_tf32_check.cu -ldl \
        2> /tmp/wgmma_tf32_ptxas.txt || { cat /tmp/wgmma_tf32_ptxas.txt; exit 1; }
    awk '/Compiling entry/ {k = ($0 ~ /k_gemm|k_geglu|k_conv|gemm_wgmma|conv2d_wgmma/); if (k) print "  ptxas:", $0} k && /registers|spill/ {print "  ptxas:", $0}' /tmp/wgmma_tf32_ptxas.txt
fi
cuda_lib="$(dirname "$(readlink -f "$NVCC")")/../lib64"
export LD_LIBRARY_PATH="$cuda_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$bin" "${1:-gemm,geglu,conv}" "$kernels" "${2:-}"
