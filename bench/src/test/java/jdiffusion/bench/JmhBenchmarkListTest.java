package jdiffusion.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.net.URL;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.openjdk.jmh.runner.BenchmarkList;
import org.openjdk.jmh.runner.BenchmarkListEntry;

/** JMH's annotation processor ran at compile time: META-INF/BenchmarkList names the benchmarks (nothing is timed here). */
class JmhBenchmarkListTest {
    private static List<BenchmarkListEntry> entries() throws IOException {
        List<URL> lists = Collections.list(JmhBenchmarkListTest.class.getClassLoader().getResources(BenchmarkList.BENCHMARK_LIST.substring(1)));
        assertFalse(lists.isEmpty(), "META-INF/BenchmarkList is not on the class path: the JMH annotation processor did not run");
        List<BenchmarkListEntry> all = new ArrayList<>();
        for (URL u : lists)
            try (InputStream in = u.openStream()) {
                all.addAll(BenchmarkList.readBenchmarkList(in));
            }
        return all;
    }

    private static BenchmarkListEntry entry(List<BenchmarkListEntry> all, String benchmark) {
        return all.stream().filter(e -> e.getUsername().equals(benchmark)).findFirst()
                .orElseThrow(() -> new AssertionError(benchmark + " is not in the JMH benchmark list: " + all));
    }

    @Test
    void benchmarkListNamesKernelAndPipelineBenchmarks() throws Exception {
        List<BenchmarkListEntry> all = entries();
        BenchmarkListEntry kernel = entry(all, "jdiffusion.bench.KernelBench.execute");
        BenchmarkListEntry pipeline = entry(all, "jdiffusion.bench.PipelineBench.generate");
        Map<String, String[]> kp = kernel.getParams().get();
        assertTrue(Arrays.asList(kp.get("backend")).containsAll(List.of("java", "opencl")), Arrays.toString(kp.get("backend")));
        assertTrue(Arrays.asList(kp.get("op")).containsAll(List.of("conv3x3_320_32x32", "groupnorm_320_64x64", "flash_1024_d80")), Arrays.toString(kp.get("op")));
        assertEquals(List.of("10"), List.of(pipeline.getParams().get().get("steps")));
        for (BenchmarkListEntry e : List.of(kernel, pipeline)) {
            assertEquals(1, e.getForks().get(), e.getUsername() + " forks");
            assertTrue(e.getJvmArgsAppend().get().contains("jdk.incubator.vector"), e.getUsername() + " forks need the Vector API module");
            // the generated harness class the list points to was compiled too
            Class.forName(e.generatedTarget().substring(0, e.generatedTarget().lastIndexOf('.')), false, getClass().getClassLoader());
        }
    }
}
