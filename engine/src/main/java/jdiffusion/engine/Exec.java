package jdiffusion.engine;

import jdiffusion.kernels.Attention;
import jdiffusion.kernels.Backend;

/** Where and how a model runs: the backend, the numeric precision and the attention processor. */
public record Exec(Backend backend, Precision precision, Attention.Processor attention) {
}
