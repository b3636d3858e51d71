package jdiffusion.bench;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import javax.imageio.ImageIO;
import jdiffusion.bench.StudyReport.Anchor;
import jdiffusion.bench.StudyReport.Row;

/**
 * Bar charts like the blog's figures, one PNG per precision, drawn headless with java.awt: top, speedup over PyTorch eager
 * vanilla attention per UNet batch (PyTorch sdpa and our three processors); bottom, images/s of a 50-step generation.
 * Text uses the JVM's fonts when it has any and a built-in 5x7 pixel font otherwise (bare GPU machines have no fonts).
 */
final class StudyCharts {
    private StudyCharts() {
    }

    static final int WIDTH = Integer.getInteger("jdiffusion.study.chartWidth", 1200), HEIGHT = Integer.getInteger("jdiffusion.study.chartHeight", 900);
    /** Forces the pixel font (tests); otherwise it is used only when AWT text rendering fails. */
    static boolean pixelFont = Boolean.getBoolean("jdiffusion.study.pixelFont");

    record Series(String name, Color color, double[] values, String[] labels) {
    }

    static void write(Path file, List<Row> rows, List<Anchor> anchors, String precision) throws IOException {
        if (!ImageIO.write(draw(rows, anchors, precision), "png", file.toFile())) throw new IOException("no PNG writer for " + file);
    }

    static BufferedImage draw(List<Row> rows, List<Anchor> anchors, String precision) {
        System.setProperty("java.awt.headless", "true");
        List<Integer> batches = StudyReport.batches(rows, anchors, precision);
        int n = batches.size();
        double[] tv = new double[n], ts = new double[n];
        String[] tvl = new String[n], tsl = new String[n];
        Map<String, double[]> ours = new HashMap<>();
        Map<String, String[]> oursLabel = new HashMap<>();
        for (String a : StudyReport.ATTENTIONS) {
            ours.put(a, new double[n]);
            oursLabel.put(a, new String[n]);
        }
        for (int i = 0; i < n; i++) {
            int b = batches.get(i);
            tv[i] = StudyReport.torchMs(anchors, "vanilla", precision, b);
            ts[i] = StudyReport.torchMs(anchors, "flash", precision, b);
            tvl[i] = StudyReport.torch(anchors, "vanilla", precision, b).filter(a -> !a.ok()).map(Anchor::status).orElse(null);
            tsl[i] = StudyReport.torch(anchors, "flash", precision, b).filter(a -> !a.ok()).map(Anchor::status).orElse(null);
            for (String a : StudyReport.ATTENTIONS) {
                ours.get(a)[i] = StudyReport.oursMs(rows, a, precision, b);
                oursLabel.get(a)[i] = StudyReport.ours(rows, a, precision, b).filter(r -> !r.ok() && !r.status().equals("SKIPPED")).map(Row::status).orElse(null);
            }
        }
        Color cTorchVanilla = new Color(0x9E9E9E), cTorchSdpa = new Color(0x546E7A);
        Color[] cOurs = {new Color(0xFFB74D), new Color(0xF57C00), new Color(0xC62828)};
        List<Series> speed = new ArrayList<>(), imgs = new ArrayList<>();
        speed.add(new Series("torch sdpa", cTorchSdpa, speedup(tv, ts), tsl));
        imgs.add(new Series("torch vanilla", cTorchVanilla, perImage(batches, tv), tvl));
        imgs.add(new Series("torch sdpa", cTorchSdpa, perImage(batches, ts), tsl));
        for (int k = 0; k < StudyReport.ATTENTIONS.size(); k++) {
            String a = StudyReport.ATTENTIONS.get(k);
            speed.add(new Series("ours " + a, cOurs[k], speedup(tv, ours.get(a)), oursLabel.get(a)));
            imgs.add(new Series("ours " + a, cOurs[k], perImage(batches, ours.get(a)), oursLabel.get(a)));
        }
        BufferedImage img = new BufferedImage(WIDTH, HEIGHT, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, WIDTH, HEIGHT);
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            Text t = new Text(g);
            String p = precision.equals("tf32") ? "tf32 (torch fp32-high)" : precision;
            t.draw("SD1.5 UNet step, 64x64 latents, " + p + ": jdiffusion vs PyTorch 2 eager (H100 anchors). UNet batch = 2 x images.", 20, 28, 2, Color.BLACK);
            int half = (HEIGHT - 50) / 2;
            String[] noBaseline = new String[n];
            for (int i = 0; i < n; i++) if (Double.isNaN(tv[i])) noBaseline[i] = "torch vanilla " + (tvl[i] == null ? "not measured" : tvl[i]);
            panel(g, t, 50, half, "Speedup over PyTorch eager vanilla attention (same precision; 1.0 = torch vanilla)", batches, speed, 1.0, noBaseline);
            panel(g, t, 50 + half, half, "Images/s, 50-step generation with CFG (UNet only)", batches, imgs, Double.NaN, new String[n]);
        } finally {
            g.dispose();
        }
        return img;
    }

    private static double[] speedup(double[] baseMs, double[] ms) {
        double[] s = new double[ms.length];
        for (int i = 0; i < ms.length; i++) s[i] = baseMs[i] / ms[i];
        return s;
    }

    private static double[] perImage(List<Integer> batches, double[] ms) {
        double[] s = new double[ms.length];
        for (int i = 0; i < ms.length; i++) s[i] = Double.isNaN(ms[i]) ? Double.NaN : StudyReport.imagesPerSecond(batches.get(i), ms[i]);
        return s;
    }

    /** One grouped bar chart in the band [top, top + height). refLine: a dashed horizontal line at that value (NaN: none). */
    private static void panel(Graphics2D g, Text t, int top, int height, String title, List<Integer> batches, List<Series> series, double refLine,
                              String[] groupNote) {
        int left = 90, right = WIDTH - 20, plotTop = top + 60, plotBottom = top + height - 50;
        t.draw(title, left, top + 20, 2, Color.BLACK);
        int lx = left;
        for (Series s : series) {
            g.setColor(s.color());
            g.fillRect(lx, top + 32, 14, 14);
            lx += 20;
            lx = t.draw(s.name(), lx, top + 44, 1, Color.DARK_GRAY) + 18;
        }
        double max = Double.isNaN(refLine) ? 0 : refLine;
        for (Series s : series) for (double v : s.values()) if (!Double.isNaN(v) && !Double.isInfinite(v)) max = Math.max(max, v);
        if (max <= 0) max = 1;
        double step = niceStep(max / 5);
        double top_ = Math.ceil(max * 1.08 / step) * step;
        g.setStroke(new BasicStroke(1));
        for (double y = 0; y <= top_ + 1e-9; y += step) {
            int py = plotBottom - (int) Math.round(y / top_ * (plotBottom - plotTop));
            g.setColor(new Color(0xE0E0E0));
            g.drawLine(left, py, right, py);
            String label = step < 1 ? String.format(Locale.ROOT, "%.1f", y) : String.format(Locale.ROOT, "%.0f", y);
            t.draw(label, left - 8 - t.width(label, 1), py + 5, 1, Color.DARK_GRAY);
        }
        g.setColor(Color.BLACK);
        g.drawLine(left, plotBottom, right, plotBottom);
        g.drawLine(left, plotTop, left, plotBottom);
        int groups = Math.max(1, batches.size());
        double gw = (right - left) / (double) groups;
        int bw = Math.max(2, (int) (gw * 0.8 / series.size()));
        for (int i = 0; i < batches.size(); i++) {
            int gx = left + (int) (i * gw + gw * 0.1);
            for (int k = 0; k < series.size(); k++) {
                Series s = series.get(k);
                double v = s.values()[i];
                int x = gx + k * bw;
                if (Double.isNaN(v) || Double.isInfinite(v)) {
                    String why = s.labels()[i];
                    if (why != null) t.draw(why.length() > 3 ? why.substring(0, 3) : why, x, plotBottom - 4, 1, s.color().darker());
                    continue;
                }
                int h = (int) Math.round(v / top_ * (plotBottom - plotTop));
                g.setColor(s.color());
                g.fillRect(x, plotBottom - h, bw - 1, h);
            }
            if (groupNote[i] != null) {
                String[] words = groupNote[i].split(" ");
                for (int w = 0; w < words.length; w++)
                    t.draw(words[w], left + (int) (i * gw + gw / 2) - t.width(words[w], 1) / 2, plotBottom - 60 + 16 * w, 1, Color.GRAY);
            }
            String label = "batch " + batches.get(i);
            t.draw(label, left + (int) (i * gw + gw / 2) - t.width(label, 1) / 2, plotBottom + 18, 1, Color.BLACK);
            String imgsLabel = batches.get(i) % 2 == 0 ? (batches.get(i) / 2) + " img" : batches.get(i) + "/2 img";
            t.draw(imgsLabel, left + (int) (i * gw + gw / 2) - t.width(imgsLabel, 1) / 2, plotBottom + 34, 1, Color.GRAY);
        }
        if (!Double.isNaN(refLine)) {
            int py = plotBottom - (int) Math.round(refLine / top_ * (plotBottom - plotTop));
            g.setColor(Color.BLACK);
            g.setStroke(new BasicStroke(1.5f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10, new float[]{6, 4}, 0));
            g.drawLine(left, py, right, py);
            g.setStroke(new BasicStroke(1));
        }
    }

    private static double niceStep(double raw) {
        double p = Math.pow(10, Math.floor(Math.log10(raw)));
        double f = raw / p;
        return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
    }

    /** Text through AWT fonts, or the pixel font when those fail or are forced. */
    static final class Text {
        private final Graphics2D g;
        private final boolean pixels;

        Text(Graphics2D g) {
            this.g = g;
            boolean px = pixelFont;
            if (!px) {
                try { // on a machine without fonts this throws (Error or RuntimeException) instead of drawing
                    BufferedImage probe = new BufferedImage(8, 8, BufferedImage.TYPE_INT_RGB);
                    Graphics2D pg = probe.createGraphics();
                    pg.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
                    pg.drawString("0", 0, 8);
                    pg.getFontMetrics().stringWidth("0");
                    pg.dispose();
                } catch (Throwable e) {
                    px = true;
                }
            }
            this.pixels = px;
        }

        /** Draws s with its baseline at y; size 1 = small, 2 = title. Returns the x after the text. */
        int draw(String s, int x, int y, int size, Color c) {
            g.setColor(c);
            if (!pixels) {
                g.setFont(new Font(Font.SANS_SERIF, size == 2 ? Font.BOLD : Font.PLAIN, size == 2 ? 16 : 12));
                g.drawString(s, x, y);
                return x + g.getFontMetrics().stringWidth(s);
            }
            int scale = size == 2 && x + s.length() * 12 <= WIDTH - 10 ? 2 : 1;
            int cx = x;
            for (char ch : s.toCharArray()) {
                int[] rows = glyph(ch);
                for (int r = 0; r < 7; r++)
                    for (int col = 0; col < 5; col++)
                        if ((rows[r] >> (4 - col) & 1) != 0) g.fillRect(cx + col * scale, y - (7 - r) * scale, scale, scale);
                cx += 6 * scale;
            }
            return cx;
        }

        int width(String s, int size) {
            if (!pixels) {
                g.setFont(new Font(Font.SANS_SERIF, size == 2 ? Font.BOLD : Font.PLAIN, size == 2 ? 16 : 12));
                FontMetrics m = g.getFontMetrics();
                return m.stringWidth(s);
            }
            return s.length() * 6 * (size == 2 ? 2 : 1);
        }
    }

    /** 5x7 glyphs, 7 rows of 5 bits (bit 4 = left column), as 14 hex digits; lower case draws as upper case. */
    private static final Map<Character, String> GLYPHS = new HashMap<>();

    static {
        String[] defs = {
                "0", "0E11131519110E", "1", "040C040404040E", "2", "0E11010204081F", "3", "1F02040201110E",
                "4", "02060A121F0202", "5", "1F101E0101110E", "6", "0608101E11110E", "7", "1F010204080808", "8", "0E11110E11110E",
                "9", "0E11110F01020C", "A", "0E1111111F1111", "B", "1E11111E11111E", "C", "0E11101010110E", "D", "1C12111111121C",
                "E", "1F10101E10101F", "F", "1F10101E101010", "G", "0E11101711110F", "H", "1111111F111111", "I", "0E04040404040E",
                "J", "0702020202120C", "K", "11121418141211", "L", "1010101010101F", "M", "111B1515111111", "N", "11111915131111",
                "O", "0E11111111110E", "P", "1E11111E101010", "Q", "0E11111115120D", "R", "1E11111E141211", "S", "0F10100E01011E",
                "T", "1F040404040404", "U", "1111111111110E", "V", "11111111110A04", "W", "1111111515150A", "X", "11110A040A1111",
                "Y", "1111110A040404", "Z", "1F01020408101F", " ", "00000000000000", ".", "00000000000C0C", ",", "000000000C0408",
                "-", "0000001F000000", "/", "00010204081000", ":", "000C0C000C0C00", "(", "02040808080402", ")", "08040202020408",
                "%", "18190204081303", "=", "00001F001F0000", "+", "0004041F040400", ">", "08040201020408", "<", "02040810080402",
                "_", "0000000000001F", ";", "000C0C000C0408", "?", "0E110102040004", "\"", "0A0A0000000000", "'", "04040000000000", "*", "00150E1F0E1500"};
        for (int i = 0; i < defs.length; i += 2) GLYPHS.put(defs[i].charAt(0), defs[i + 1]);
    }

    static int[] glyph(char c) {
        String hex = GLYPHS.getOrDefault(Character.toUpperCase(c), GLYPHS.get('?'));
        int[] rows = new int[7];
        for (int r = 0; r < 7; r++) rows[r] = Integer.parseInt(hex.substring(2 * r, 2 * r + 2), 16);
        return rows;
    }
}
