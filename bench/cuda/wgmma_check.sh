#!/usr/bin/env bash
# Builds and runs bench/cuda/wgmma_check.cu (the standalone check + benchmark of kernels/gemm_wgmma.cu's GEMM, GEGLU and
# conv against fp32 references and gemm_mma_f16 / gemm_mma_geglu_f16 / conv2d_v3_f16; the module also built by NVRTC for
# sm_90a as the engine does) on an sm_90 GPU.
# Usage, in the repository root: bash bench/cuda/wgmma_check.sh [parts [conv-case-filter]]   (parts: gemm,geglu,conv = all)
# The table goes to stdout and to $OUT/wgmma.txt ($OUT defaults to ./out). NVCC overrides the compiler.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
OUT=${OUT:-$root/out}
mkdir -p "$OUT"
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
bin=/tmp/wgmma_check
# -gencode, not -arch=sm_90a: nvcc 13.0's shorthand also runs a plain sm_90 pass that rejects wgmma
kernels=tornado-kernels/src/main/resources/kernels
"$NVCC" -gencode=arch=compute_90a,code=sm_90a -O3 -std=c++17 -Xptxas -v -I "$kernels" \
    -o "$bin" bench/cuda/wgmma_check.cu -ldl 2> /tmp/wgmma_ptxas.txt || { cat /tmp/wgmma_ptxas.txt; exit 1; }
# registers / spills of every wgmma kernel (ptxas -v)
awk '/Compiling entry/ {k = ($0 ~ /gw_variant|gg_variant|gc_variant|gemm_wgmma|conv2d_wgmma/)} k && /registers|spill/ {print "  ptxas:", $0}' /tmp/wgmma_ptxas.txt
grep -i warning /tmp/wgmma_ptxas.txt || true
if command -v cuobjdump > /dev/null; then echo "HGMMA instructions in the binary: $(cuobjdump -sass "$bin" | grep -c HGMMA)"; fi
# the binary also builds gemm_wgmma.cu with NVRTC (dlopen: libnvrtc next to nvcc) as the engine does
cuda_lib="$(dirname "$(readlink -f "$NVCC")")/../lib64"
export LD_LIBRARY_PATH="$cuda_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$bin" "$OUT/wgmma.txt" "$kernels" "${1:-gemm,geglu,conv}" "${2:-}"
