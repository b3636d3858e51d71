package jdiffusion.loader;

import java.lang.foreign.MemorySegment;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Weights under diffusers names that point into one or more safetensors files without copying: a sharded set, a
 * text encoder with or without transformers' "text_model." prefix, or a component of a single-file original
 * checkpoint (renamed keys, 1x1 convs seen as linears, fused q/k/v seen as three row slices).
 * Lookups also accept the name with {@code aliasPrefix} in front (e.g. "text_model.encoder.layers.0...").
 */
public final class MappedWeights implements Weights {
    /**
     * Where a diffusers name lives: a whole stored tensor (from = -1; shape may be a reshape of the stored one) or
     * elements [from, from + product(shape)) of it (a row slice).
     */
    record Entry(SafeTensors file, String stored, long[] shape, long from) {}

    private final String source;
    private final Map<String, Entry> entries;
    private final List<SafeTensors> owned;
    private final String aliasPrefix;
    private volatile boolean closed;

    MappedWeights(String source, Map<String, Entry> entries, List<SafeTensors> owned, String aliasPrefix) {
        this.source = source;
        this.entries = Collections.unmodifiableMap(new LinkedHashMap<>(entries));
        this.owned = List.copyOf(owned);
        this.aliasPrefix = aliasPrefix;
    }

    static Entry whole(SafeTensors file, String stored) {
        return new Entry(file, stored, file.shape(stored), -1);
    }

    @Override
    public String source() {
        return source;
    }

    @Override
    public Set<String> names() {
        check();
        return entries.keySet();
    }

    @Override
    public boolean has(String name) {
        check();
        return find(name) != null;
    }

    /** The file and stored key a name comes from, for messages and inspection. */
    public String origin(String name) {
        Entry e = entry(name);
        return e.file.source() + ":" + e.stored + (e.from >= 0 ? "[" + e.from + "..]" : "");
    }

    @Override
    public TensorInfo info(String name) {
        Entry e = entry(name);
        return new TensorInfo(name, e.file.info(e.stored).type(), e.shape.clone());
    }

    @Override
    public float[] floats(String name) {
        Entry e = entry(name);
        return e.from < 0 ? e.file.floats(e.stored) : e.file.floats(e.stored, e.from, count(e));
    }

    @Override
    public short[] halves(String name) {
        Entry e = entry(name);
        return e.from < 0 ? e.file.halves(e.stored) : e.file.halves(e.stored, e.from, count(e));
    }

    /** Raw little-endian bytes (a view into the mapped file). */
    public MemorySegment segment(String name) {
        Entry e = entry(name);
        MemorySegment s = e.file.segment(e.stored);
        if (e.from < 0) return s;
        int size = e.file.info(e.stored).type().bytes;
        return s.asSlice(e.from * size, (long) count(e) * size);
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        for (SafeTensors f : owned) f.close();
    }

    @Override
    public String toString() {
        return "MappedWeights[" + source + ", " + entries.size() + " tensors]";
    }

    private Entry find(String name) {
        Entry e = entries.get(name);
        if (e == null && aliasPrefix != null && name.startsWith(aliasPrefix))
            e = entries.get(name.substring(aliasPrefix.length()));
        return e;
    }

    private Entry entry(String name) {
        check();
        Entry e = find(name);
        if (e == null) throw new LoaderException(source + ": no tensor named '" + name + "'");
        return e;
    }

    private int count(Entry e) {
        long n = 1;
        for (long d : e.shape) n *= d;
        return (int) n;
    }

    private void check() {
        if (closed) throw new LoaderException(source + ": used after close()");
    }
}
