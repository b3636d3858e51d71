/* Attention family (portable). T is float, or half_t with -DJD_F16; all arithmetic in fp32.
 * Layouts: q [batch, seqQ, heads*D], k/v [batch, seqK, heads*D], out like q; bh = b*heads + h.
 * VANILLA / CHUNKED (a slice of `rows` queries from q0; scores s [bhCount, rows, seqK]):
 *   attn_scores   local (16,16,1), global (cover(seqK,16), cover(rows,16), min(bhCount,65535)): s = scale q k^T, 16x16 tiles in local memory
 *   attn_softmax  local 256, global (bhCount*rows*256): row softmax in place, causal mask j > q0 + r
 *   attn_pv       local (16,16,1), global (cover(D,16), cover(rows,16), min(bhCount,65535)): out = p v
 * FLASH:
 *   flash_attn    local FBQ, global (bhCount*FBQ, cover(seqQ,FBQ)/FBQ): one item per query row, K/V tiles of FBK rows in
 *                 local memory, online softmax (running max m, sum l, accumulator rescaled by exp(m_old - m_new)).
 *                 -DHEAD_DIM=D (private q and accumulator), -DFBK, -DFBQ. */
#ifdef JD_F16
#define T half_t
#define LD(p, i) LDH(p, i)
#define ST(p, i, v) STH(p, i, v)
#else
#define T float
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (v))
#endif

#define TS 16
#define SM_GROUP 256

KERNEL void attn_scores(GLOBAL const T* q, GLOBAL const T* k, GLOBAL T* s, int bhCount, int heads, int seqQ, int seqK, int D,
                        float scale, int q0, int rows) {
    LOCAL_ARRAY(float, Qt, TS * (TS + 1));
    LOCAL_ARRAY(float, Kt, TS * (TS + 1));
    int tx = LID(0), ty = LID(1);
    int j = GROUP(0) * TS + tx, r = GROUP(1) * TS + ty;
    int kr = GROUP(0) * TS + ty;                      /* key row this item loads */
    long hd = (long)heads * D;
    for (int bh = GROUP(2); bh < bhCount; bh += NGROUPS(2)) {
        int b = bh / heads, h = bh % heads;
        GLOBAL const T* qb = q + ((long)b * seqQ + q0) * hd + (long)h * D;
        GLOBAL const T* kb = k + (long)b * seqK * hd + (long)h * D;
        float acc = 0.0f;
        for (int d0 = 0; d0 < D; d0 += TS) {
            int d = d0 + tx;
            Qt[ty * (TS + 1) + tx] = (r < rows && d < D) ? LD(qb, (long)r * hd + d) : 0.0f;
            Kt[ty * (TS + 1) + tx] = (kr < seqK && d < D) ? LD(kb, (long)kr * hd + d) : 0.0f;
            BARRIER();
            for (int e = 0; e < TS; e++) acc += Qt[ty * (TS + 1) + e] * Kt[tx * (TS + 1) + e];
            BARRIER();
        }
        if (r < rows && j < seqK) ST(s, ((long)bh * rows + r) * seqK + j, acc * scale);
    }
}

INLINE float attn_block_max(LOCAL_PTR float* buf, float v) {
    int l = LID(0);
    buf[l] = v;
    BARRIER();
    for (int s = LSIZE(0) / 2; s > 0; s >>= 1) {
        if (l < s) buf[l] = FMAX(buf[l], buf[l + s]);
        BARRIER();
    }
    float r = buf[0];
    BARRIER();
    return r;
}

INLINE float attn_block_sum(LOCAL_PTR float* buf, float v) {
    int l = LID(0);
    buf[l] = v;
    BARRIER();
    for (int s = LSIZE(0) / 2; s > 0; s >>= 1) {
        if (l < s) buf[l] += buf[l + s];
        BARRIER();
    }
    float r = buf[0];
    BARRIER();
    return r;
}

KERNEL void attn_softmax(GLOBAL T* s, int rowsTotal, int rows, int seqK, int q0, int causal) {
    LOCAL_ARRAY(float, buf, SM_GROUP);
    long row = GROUP(0);
    if (row >= rowsTotal) return;
    int l = LID(0), ls = LSIZE(0);
    int i = q0 + (int)(row % rows);
    int valid = causal ? (i + 1 < seqK ? i + 1 : seqK) : seqK;
    GLOBAL T* p = s + row * seqK;
    if ((seqK & 7) == 0) {                            /* rows 16-byte aligned: 8 scores per access (LD8 / ST8, prelude.h) */
        float m = -INFINITY_F;
        for (int j = 8 * l; j < valid; j += 8 * ls) { float f[8]; LD8(p, j, f); for (int k = 0; k < 8; k++) if (j + k < valid) m = FMAX(m, f[k]); }
        m = attn_block_max(buf, m);
        float sum = 0.0f;
        for (int j = 8 * l; j < valid; j += 8 * ls) { float f[8]; LD8(p, j, f); for (int k = 0; k < 8; k++) if (j + k < valid) sum += EXP(f[k] - m); }
        float inv = 1.0f / attn_block_sum(buf, sum);
        for (int j = 8 * l; j < seqK; j += 8 * ls) {
            float f[8];
            LD8(p, j, f);
            for (int k = 0; k < 8; k++) f[k] = j + k < valid ? EXP(f[k] - m) * inv : 0.0f;
            ST8(p, j, f);
        }
        return;
    }
    float m = -INFINITY_F;
    for (int j = l; j < valid; j += ls) m = FMAX(m, LD(p, j));
    m = attn_block_max(buf, m);
    float sum = 0.0f;
    for (int j = l; j < valid; j += ls) sum += EXP(LD(p, j) - m);
    float inv = 1.0f / attn_block_sum(buf, sum);
    for (int j = l; j < seqK; j += ls) ST(p, j, j < valid ? EXP(LD(p, j) - m) * inv : 0.0f);
}

KERNEL void attn_pv(GLOBAL const T* p, GLOBAL const T* v, GLOBAL T* out, int bhCount, int heads, int seqQ, int seqK, int D,
                    int q0, int rows) {
    LOCAL_ARRAY(float, Pt, TS * (TS + 1));
    LOCAL_ARRAY(float, Vt, TS * (TS + 1));
    int tx = LID(0), ty = LID(1);
    int d = GROUP(0) * TS + tx, r = GROUP(1) * TS + ty;
    long hd = (long)heads * D;
    for (int bh = GROUP(2); bh < bhCount; bh += NGROUPS(2)) {
        int b = bh / heads, h = bh % heads;
        GLOBAL const T* pb = p + (long)bh * rows * seqK;
        GLOBAL const T* vb = v + (long)b * seqK * hd + (long)h * D;
        float acc = 0.0f;
        for (int j0 = 0; j0 < seqK; j0 += TS) {
            int pj = j0 + tx, vj = j0 + ty;
            Pt[ty * (TS + 1) + tx] = (r < rows && pj < seqK) ? LD(pb, (long)r * seqK + pj) : 0.0f;
            Vt[ty * (TS + 1) + tx] = (vj < seqK && d < D) ? LD(vb, (long)vj * hd + d) : 0.0f;
            BARRIER();
            for (int e = 0; e < TS; e++) acc += Pt[ty * (TS + 1) + e] * Vt[e * (TS + 1) + tx];
            BARRIER();
        }
        if (r < rows && d < D) ST(out, ((long)b * seqQ + q0 + r) * hd + (long)h * D + d, acc);
    }
}

#ifndef HEAD_DIM
#define HEAD_DIM 64
#endif
#ifndef FBQ
#define FBQ 64
#endif
#ifndef FBK
#define FBK 32
#endif

KERNEL void flash_attn(GLOBAL const T* q, GLOBAL const T* k, GLOBAL const T* v, GLOBAL T* out, int bhCount, int heads,
                       int seqQ, int seqK, int D, float scale, int causal) {
    LOCAL_ARRAY(float, Ks, FBK * HEAD_DIM);
    LOCAL_ARRAY(float, Vs, FBK * HEAD_DIM);
    int bh = GROUP(0), l = LID(0), ls = LSIZE(0);
    int b = bh / heads, h = bh % heads;
    int i = GROUP(1) * FBQ + l;
    long hd = (long)heads * HEAD_DIM;
    GLOBAL const T* kb = k + (long)b * seqK * hd + (long)h * HEAD_DIM;
    GLOBAL const T* vb = v + (long)b * seqK * hd + (long)h * HEAD_DIM;
    int qi = i < seqQ ? i : seqQ - 1;
    long qo = ((long)b * seqQ + qi) * hd + (long)h * HEAD_DIM;
    float qv[HEAD_DIM], acc[HEAD_DIM], sc[FBK];
    for (int d = 0; d < HEAD_DIM; d++) { qv[d] = LD(q, qo + d); acc[d] = 0.0f; }
    float m = -INFINITY_F, sum = 0.0f;
    int kEnd = seqK;
    if (causal) {
        int last = GROUP(1) * FBQ + FBQ;                /* keys beyond the block's last query are all masked */
        kEnd = last < seqK ? last : seqK;
    }
    for (int k0 = 0; k0 < kEnd; k0 += FBK) {
        int nk = seqK - k0 < FBK ? seqK - k0 : FBK;
        BARRIER();
        for (int e = l; e < FBK * HEAD_DIM; e += ls) {
            int r = e / HEAD_DIM, d = e - r * HEAD_DIM;
            float kx = 0.0f, vx = 0.0f;
            if (r < nk) {
                long o = (long)(k0 + r) * hd + d;
                kx = LD(kb, o);
                vx = LD(vb, o);
            }
            Ks[e] = kx;
            Vs[e] = vx;
        }
        BARRIER();
        float mt = m;
        for (int j = 0; j < FBK; j++) {
            float s = -INFINITY_F;
            if (j < nk && (!causal || k0 + j <= i)) {
                s = 0.0f;
                for (int d = 0; d < HEAD_DIM; d++) s += qv[d] * Ks[j * HEAD_DIM + d];
                s *= scale;
            }
            sc[j] = s;
            mt = FMAX(mt, s);
        }
        if (mt == -INFINITY_F) continue;               /* every key of this tile masked for this row */
        float alpha = EXP(m - mt);                      /* 0 on the first tile (m = -inf) */
        sum *= alpha;
        for (int d = 0; d < HEAD_DIM; d++) acc[d] *= alpha;
        for (int j = 0; j < FBK; j++) {
            float pj = EXP(sc[j] - mt);
            sum += pj;
            for (int d = 0; d < HEAD_DIM; d++) acc[d] += pj * Vs[j * HEAD_DIM + d];
        }
        m = mt;
    }
    if (i < seqQ) {
        long o = ((long)b * seqQ + i) * hd + (long)h * HEAD_DIM;
        float inv = 1.0f / sum;
        for (int d = 0; d < HEAD_DIM; d++) ST(out, o + d, acc[d] * inv);
    }
}
