package jdiffusion.bench;

import jdiffusion.engine.UNet2DConditionModel;
import jdiffusion.loader.SafeTensors;
import jdiffusion.loader.SafeTensorsWriter;
import jdiffusion.loader.SingleFileCheckpoint;
import jdiffusion.loader.TensorType;
import jdiffusion.loader.UNetConfig;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Loader benchmark (issue: foundation): writes a random-weight SD1.5-shaped fp32 UNet safetensors file (~3.4 GB,
 * streamed with bounded memory) into a temp dir, then reports time-to-first-tensor (open + header + first tensor as
 * float[]) and read throughput converting every tensor to float[] (mmap'ed, page cache warm after the write).
 * Usage: LoaderBench [--dir DIR] [--keep] [--dtype F32|F16]
 */
public final class LoaderBench {
    public static void main(String[] args) throws Exception {
        Path dir = null;
        boolean keep = false;
        TensorType dtype = TensorType.F32;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--dir" -> dir = Path.of(args[++i]);
                case "--keep" -> keep = true;
                case "--dtype" -> dtype = TensorType.valueOf(args[++i]);
                case "--out" -> i++; // accepted for bench/gpu-run.sh; results go to stdout
                default -> throw new IllegalArgumentException("unknown option " + args[i] + " (--dir DIR --keep --dtype F32|F16)");
            }
        }
        UNetConfig config = SingleFileCheckpoint.bundledUNet("sd15");
        Map<String, long[]> shapes = UNet2DConditionModel.parameterShapes(config);
        Path file = (dir == null ? Files.createTempDirectory("jd-loaderbench") : dir).resolve("sd15-unet-random.safetensors");
        try {
            SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "pt");
            long elements = 0;
            for (var e : shapes.entrySet()) {
                long n = 1;
                for (long d : e.getValue()) n *= d;
                elements += n;
                long seed = e.getKey().hashCode();
                w.add(e.getKey(), dtype, e.getValue(), (first, out, count) -> {
                    SplittableRandom r = new SplittableRandom(seed ^ first);
                    for (int i = 0; i < count; i++) out[i] = (float) (r.nextDouble() - 0.5) * 0.02f;
                });
            }
            long t0 = System.nanoTime();
            w.write(file);
            double writeS = (System.nanoTime() - t0) / 1e9;
            long bytes = Files.size(file);
            System.out.printf("SD1.5 UNet: %d tensors, %,d parameters, %s file %.2f GB written in %.2f s (%.2f GB/s)%n",
                    shapes.size(), elements, dtype, bytes / 1e9, writeS, bytes / 1e9 / writeS);

            long t1 = System.nanoTime();
            float[] first;
            double sum = 0;
            long read = 0;
            try (SafeTensors st = SafeTensors.open(file)) {
                first = st.floats(st.names().iterator().next());
                double ttft = (System.nanoTime() - t1) / 1e6;
                System.out.printf("time to first tensor: %.2f ms (open, header of %d tensors, %d floats)%n", ttft, st.names().size(), first.length);
                long t2 = System.nanoTime();
                for (String name : st.names()) {
                    float[] f = st.floats(name);
                    sum += f[f.length / 2];
                    read += f.length * (long) dtype.bytes;
                }
                double s = (System.nanoTime() - t2) / 1e9;
                System.out.printf("read all tensors as float[]: %.2f GB in %.2f s = %.2f GB/s (checksum %.4f)%n", read / 1e9, s, read / 1e9 / s, sum);
            }
        } finally {
            if (!keep) {
                Files.deleteIfExists(file);
                if (dir == null) Files.deleteIfExists(file.getParent());
            }
        }
    }
}
