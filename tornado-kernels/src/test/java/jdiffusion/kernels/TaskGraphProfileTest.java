package jdiffusion.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;

import org.junit.jupiter.api.Test;

/** TaskGraph.profile: one time per task, totals per kernel (largest first), shares summing to 1, CSV and top-n text. */
class TaskGraphProfileTest {
    @Test
    void profilesEveryTaskAndSumsPerKernel() {
        JavaBackend java = new JavaBackend();
        try (TaskGraph g = new TaskGraph("profile", java)) {
            Buffer x = java.allocate("x", DType.F32, 64 * 96), w = java.allocate("w", DType.F32, 32 * 96), y = java.allocate("y", DType.F32, 64 * 32);
            Buffer w2 = java.allocate("w2", DType.F32, 16 * 32), z = java.allocate("z", DType.F32, 64 * 16);
            Buffer cx = java.allocate("cx", DType.F32, 2 * 8 * 9 * 9), cw = java.allocate("cw", DType.F32, 4 * 8 * 9), co = java.allocate("co", DType.F32, 2 * 4 * 81);
            Gemm.linear(g, x, w, null, y, 64, 32, 96);
            Gemm.linear(g, y, w2, null, z, 64, 16, 32);
            Conv2d.conv2d(g, cx, cw, null, co, 2, 8, 9, 9, 4, 3, 1, 1);
            Profile p = g.profile();
            assertEquals(3, p.tasks().size());
            assertTrue(p.hostTimed());
            List<Profile.KernelTime> k = p.byKernel();
            assertEquals(2, k.size(), k.toString());
            assertEquals(3, k.stream().mapToInt(Profile.KernelTime::calls).sum());
            assertEquals(1.0, k.stream().mapToDouble(Profile.KernelTime::share).sum(), 1e-9);
            for (int i = 1; i < k.size(); i++) assertTrue(k.get(i - 1).millis() >= k.get(i).millis());
            String csv = p.csv();
            assertTrue(csv.startsWith("kernel,calls,total_ms,share\n") && csv.lines().count() == 3, csv);
            assertTrue(p.top(15).contains("gemm/gemm_tiled_f32"), p.top(15));
        }
    }
}
