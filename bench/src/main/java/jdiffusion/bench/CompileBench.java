package jdiffusion.bench;

import jdiffusion.engine.Exec;
import jdiffusion.engine.Precision;
import jdiffusion.engine.RandomWeights;
import jdiffusion.engine.UNet2DConditionModel;
import jdiffusion.kernels.Attention;
import jdiffusion.kernels.Backend;
import jdiffusion.kernels.Backends;
import jdiffusion.kernels.KernelCache;
import jdiffusion.loader.SingleFileCheckpoint;
import jdiffusion.loader.UNetConfig;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * The compile step, per kernel module and for the whole library the SD1.5 UNet uses: every attention processor x
 * precision builds the UNet's task graph (small 8x8 latents: the kernels are the same at any size) on a backend whose
 * kernel cache is an empty folder ("cold": NVRTC or clBuildProgram), then again on a fresh backend over the same folder
 * ("cached": binaries loaded). Prints one row per module with cold and cached seconds, and the totals.
 * Usage: CompileBench [cuda|opencl ...]   (default: cuda)
 */
public final class CompileBench {
    public static void main(String[] args) throws Exception {
        List<String> backends = args.length == 0 ? List.of("cuda") : List.of(args);
        UNetConfig config = SingleFileCheckpoint.bundledUNet("sd15");
        RandomWeights weights = new RandomWeights(UNet2DConditionModel.parameterShapes(config), 0);
        for (String name : backends) {
            Path dir = Files.createTempDirectory("jd-compilebench");
            Map<String, double[]> modules = new TreeMap<>(); // module -> {cold s, cached s}
            for (int pass = 0; pass < 2; pass++) {
                KernelCache cache = new KernelCache(dir);
                try (Backend backend = Backends.open(name, cache)) {
                    if (pass == 0) System.out.println("== " + name + ": " + backend.device());
                    for (Attention.Processor p : Attention.Processor.values())
                        for (Precision precision : Precision.values())
                            try (UNet2DConditionModel unet = new UNet2DConditionModel(config, weights, new Exec(backend, precision, p))) {
                                int cross = config.crossAttentionDim()[0];
                                unet.forward(new float[2 * 4 * 8 * 8], 2, 8, 8, new float[]{500, 500}, new float[2 * 77 * cross], 77);
                            }
                    for (KernelCache.CompileRecord r : cache.compiles()) {
                        if (r.fromCache() != (pass == 1)) continue;
                        modules.computeIfAbsent(r.kernelId(), k -> new double[]{Double.NaN, Double.NaN})[pass] = r.seconds();
                    }
                }
            }
            double cold = 0, cached = 0;
            System.out.printf(Locale.ROOT, "%-90s %9s %9s%n", "module (family/kernel[options])", "cold s", "cached s");
            for (var e : modules.entrySet()) {
                System.out.printf(Locale.ROOT, "%-90s %9.4f %9.4f%n", e.getKey(), e.getValue()[0], e.getValue()[1]);
                if (!Double.isNaN(e.getValue()[0])) cold += e.getValue()[0];
                if (!Double.isNaN(e.getValue()[1])) cached += e.getValue()[1];
            }
            System.out.printf(Locale.ROOT, "%-90s %9.4f %9.4f%n", "whole library used by the SD1.5 UNet (" + modules.size() + " modules)", cold, cached);
        }
    }
}
