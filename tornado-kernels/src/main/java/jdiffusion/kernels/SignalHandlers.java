package jdiffusion.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.concurrent.atomic.AtomicInteger;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Keeps the JVM's own signal handlers installed while vendor compilers run in-process.
 *
 * <p>The JVM relies on SIGSEGV/SIGBUS/SIGFPE/... for safepoint polls and implicit null checks. PoCL's LLVM (any
 * clBuildProgram that misses PoCL's cache) installs its crash handlers over them with SA_RESETHAND: the next
 * safepoint, hit by several Java threads at once, can then kill the process with a bare "Segmentation fault"
 * (seen in CI). Preloading {@code $JAVA_HOME/lib/libjsig.so} prevents that (the tests and scripts do), but a program
 * that imports this library cannot be expected to, so the backends call {@link #check} after each call into a
 * driver that may compile: when a JVM-owned handler was replaced, the JVM's is put back. Under libjsig nothing ever
 * changes and check costs one sigaction call. Linux only (elsewhere a no-op); the sigaction struct is treated as
 * opaque bytes, so its layout does not matter.
 */
final class SignalHandlers {
    private static final int SIGSEGV = 11;
    /** Large enough for struct sigaction on every Linux ABI (glibc x86_64: 152 bytes). */
    private static final long SIGACTION_BYTES = 512;

    private static final MethodHandle SIGACTION;
    /** The JVM-owned handlers as captured before any driver was loaded, indexed by signal number (null: not the JVM's). */
    private static final MemorySegment[] JVM = new MemorySegment[32];
    private static final AtomicInteger RESTORED = new AtomicInteger();
    /** -Djdiffusion.signals.keep=true leaves the drivers' handlers installed (to show the failure; unsafe). */
    private static final boolean KEEP = Boolean.getBoolean("jdiffusion.signals.keep");

    static {
        MethodHandle sigaction = null;
        try {
            if (System.getProperty("os.name", "").startsWith("Linux")) {
                Linker linker = Linker.nativeLinker();
                // libc's own sigaction, not an interposed one (libjsig would report the saved, not the installed, handler)
                SymbolLookup libc = SymbolLookup.libraryLookup("libc.so.6", Arena.global());
                MethodHandle sa = linker.downcallHandle(libc.find("sigaction").orElseThrow(), FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
                MethodHandle dladdr = linker.downcallHandle(libc.find("dladdr").orElseThrow(), FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment info = a.allocate(64);
                    for (int sig = 1; sig < JVM.length; sig++) {
                        if (sig == 9 || sig == 19) continue; // SIGKILL, SIGSTOP
                        MemorySegment cur = Arena.global().allocate(SIGACTION_BYTES, 16);
                        if ((int) sa.invokeExact(sig, MemorySegment.NULL, cur) != 0) continue;
                        long handler = cur.get(JAVA_LONG, 0);
                        if (handler == 0 || handler == 1) continue; // SIG_DFL, SIG_IGN
                        if ((int) dladdr.invokeExact(MemorySegment.ofAddress(handler), info) == 0) continue;
                        MemorySegment name = info.get(ADDRESS, 0);
                        if (name.equals(MemorySegment.NULL)) continue;
                        if (name.reinterpret(4096).getString(0).endsWith("libjvm.so")) JVM[sig] = cur;
                    }
                }
                if (JVM[SIGSEGV] != null) sigaction = sa;
            }
        } catch (Throwable t) {
            sigaction = null; // no libc lookup here: nothing to guard
        }
        SIGACTION = sigaction;
    }

    private SignalHandlers() {
    }

    /** Captures the JVM's handlers; call before a driver library is first loaded. */
    static void capture() {
        // the work is done once, by the class initialiser
    }

    /** Whether the JVM's handlers were found and are being guarded. */
    static boolean active() {
        return SIGACTION != null && !KEEP;
    }

    /** How many times a replaced JVM handler set was put back. */
    static int restored() {
        return RESTORED.get();
    }

    /** Puts the JVM's handlers back if a driver replaced them (cheap: one sigaction call when nothing changed). */
    static void check() {
        if (SIGACTION == null || KEEP) return;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment cur = a.allocate(SIGACTION_BYTES, 16);
            if ((int) SIGACTION.invokeExact(SIGSEGV, MemorySegment.NULL, cur) == 0 && cur.get(JAVA_LONG, 0) == JVM[SIGSEGV].get(JAVA_LONG, 0)) return;
            restore(a);
        } catch (Throwable t) {
            throw new KernelException("cannot check the JVM's signal handlers: " + t, t);
        }
    }

    /** The address of the handler installed for sig (0: SIG_DFL, or not guarded here). */
    static long installedHandler(int sig) {
        if (SIGACTION == null) return 0;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment cur = a.allocate(SIGACTION_BYTES, 16);
            int rc = (int) SIGACTION.invokeExact(sig, MemorySegment.NULL, cur);
            return rc == 0 ? cur.get(JAVA_LONG, 0) : 0;
        } catch (Throwable t) {
            throw new KernelException("sigaction(" + sig + ") failed: " + t, t);
        }
    }

    /** The JVM's handler of sig as captured, or 0 when the JVM did not own sig. */
    static long jvmHandler(int sig) {
        return sig > 0 && sig < JVM.length && JVM[sig] != null ? JVM[sig].get(JAVA_LONG, 0) : 0;
    }

    private static synchronized void restore(Arena a) throws Throwable {
        MemorySegment cur = a.allocate(SIGACTION_BYTES, 16);
        boolean any = false;
        for (int sig = 1; sig < JVM.length; sig++) {
            if (JVM[sig] == null) continue;
            if ((int) SIGACTION.invokeExact(sig, MemorySegment.NULL, cur) == 0 && cur.get(JAVA_LONG, 0) == JVM[sig].get(JAVA_LONG, 0)) continue;
            if ((int) SIGACTION.invokeExact(sig, JVM[sig], MemorySegment.NULL) != 0)
                throw new KernelException("cannot reinstall the JVM's handler of signal " + sig + " after a driver replaced it");
            any = true;
        }
        if (any) RESTORED.incrementAndGet();
    }
}
