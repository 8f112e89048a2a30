"""ITU-R BS.1770-4 integrated loudness (K-weighting, 400 ms blocks, absolute and relative gates)."""

from __future__ import annotations

import numpy as np

# K-weighting biquads as published for 48 kHz: a high-shelf "head" filter, then the RLB high-pass.
_SHELF = ([1.53512485958697, -2.69169618940638, 1.19839281085285], [1.0, -1.69065929318241, 0.73248077421585])
_HIGHPASS = ([1.0, -2.0, 1.0], [1.0, -1.99004745483398, 0.99007225036621])
RATE = 48000


def _response(coeffs: tuple[list[float], list[float]], n_fft: int) -> np.ndarray:
    b, a = coeffs
    z = np.exp(-1j * np.pi * np.arange(n_fft // 2 + 1) / (n_fft // 2))
    return (b[0] + b[1] * z + b[2] * z * z) / (a[0] + a[1] * z + a[2] * z * z)


def k_weight(samples: np.ndarray) -> np.ndarray:
    """Apply the K-weighting filter to (n,) or (n, channels) samples at 48 kHz.

    The two IIR stages are applied as their frequency response on a zero-padded FFT, which
    equals running the recursive filter from rest (the impulse response dies out in the padding).
    """
    x = np.asarray(samples, dtype=np.float64)
    n = x.shape[0]
    n_fft = 1 << int(np.ceil(np.log2(n + RATE)))
    spectrum = np.fft.rfft(x, n=n_fft, axis=0)
    response = _response(_SHELF, n_fft) * _response(_HIGHPASS, n_fft)
    if x.ndim == 2:
        response = response[:, None]
    return np.fft.irfft(spectrum * response, n=n_fft, axis=0)[:n]


def integrated_loudness(samples: np.ndarray, rate: int = RATE) -> float:
    """Integrated loudness in LUFS of (n,) or (n, channels) float samples in [-1, 1]."""
    if rate != RATE:
        raise ValueError("loudness is measured at 48 kHz")
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    weighted = k_weight(x)
    block, step = int(0.4 * rate), int(0.1 * rate)
    if weighted.shape[0] < block:
        return float("-inf")
    energy = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(weighted ** 2, axis=0)])
    starts = np.arange(0, weighted.shape[0] - block + 1, step)
    # Mean square per block and channel, summed over channels (L/R weights are 1.0).
    power = ((energy[starts + block] - energy[starts]) / block).sum(axis=1)
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10 * np.log10(power)
    gated = power[loudness > -70.0]
    if gated.size == 0:
        return float("-inf")
    relative = -0.691 + 10 * np.log10(gated.mean()) - 10.0
    final = power[(loudness > -70.0) & (loudness > relative)]
    return float(-0.691 + 10 * np.log10(final.mean()))
