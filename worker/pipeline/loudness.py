"""ITU-R BS.1770-4 integrated loudness (K-weighting, 400 ms blocks, absolute and relative gates)."""

from __future__ import annotations

import functools

import numpy as np

# K-weighting biquads as published for 48 kHz: a high-shelf "head" filter, then the RLB high-pass.
_SHELF = ([1.53512485958697, -2.69169618940638, 1.19839281085285], [1.0, -1.69065929318241, 0.73248077421585])
_HIGHPASS = ([1.0, -2.0, 1.0], [1.0, -1.99004745483398, 0.99007225036621])
RATE = 48000


#: The K-weighting's impulse response is cut after this many samples: its slowest pole (radius
#: 0.995) has decayed below 1e-30 by then, so the cut changes nothing a float64 can hold.
IMPULSE_SAMPLES = 1 << 14
#: FFT size of the overlap-add convolution (each block adds IMPULSE_SAMPLES - 1 samples of tail).
BLOCK_FFT = 1 << 16


def _response(coeffs: tuple[list[float], list[float]], n_fft: int) -> np.ndarray:
    b, a = coeffs
    z = np.exp(-1j * np.pi * np.arange(n_fft // 2 + 1) / (n_fft // 2))
    return (b[0] + b[1] * z + b[2] * z * z) / (a[0] + a[1] * z + a[2] * z * z)


@functools.cache
def _kernel_spectrum() -> np.ndarray:
    """Spectrum (at BLOCK_FFT) of the K-weighting's impulse response, cut to IMPULSE_SAMPLES."""
    dense = 1 << 18  # sampled finely enough that the response's own wrap-around is below 1e-30
    impulse = np.fft.irfft(_response(_SHELF, dense) * _response(_HIGHPASS, dense), n=dense)[:IMPULSE_SAMPLES]
    return np.fft.rfft(impulse, n=BLOCK_FFT)


def _weighted_pieces(x: np.ndarray):
    """K-weighted (n, channels) samples in consecutive pieces, block by block (overlap-add with FFTs
    of BLOCK_FFT samples: a convolution with the impulse response, which equals running the
    recursive filter from rest). Memory stays at a few blocks whatever the length."""
    n = x.shape[0]
    kernel = _kernel_spectrum()[:, None]
    step = BLOCK_FFT - IMPULSE_SAMPLES + 1
    carry = np.zeros((IMPULSE_SAMPLES - 1, x.shape[1]))
    for start in range(0, n, step):
        block = np.asarray(x[start:start + step], dtype=np.float64)
        filtered = np.fft.irfft(np.fft.rfft(block, n=BLOCK_FFT, axis=0) * kernel, n=BLOCK_FFT, axis=0)
        filtered[:IMPULSE_SAMPLES - 1] += carry
        size = block.shape[0]
        carry = filtered[size:size + IMPULSE_SAMPLES - 1].copy()
        if carry.shape[0] < IMPULSE_SAMPLES - 1:
            carry = np.vstack([carry, np.zeros((IMPULSE_SAMPLES - 1 - carry.shape[0], x.shape[1]))])
        yield filtered[:size]


def integrated_loudness(samples: np.ndarray, rate: int = RATE) -> float:
    """Integrated loudness in LUFS of (n,) or (n, channels) float samples in [-1, 1].

    The weighted signal is never held whole: its energy is summed per 100 ms step as it is made,
    and each 400 ms gating block is four consecutive steps (the blocks overlap by 75 %)."""
    if rate != RATE:
        raise ValueError("loudness is measured at 48 kHz")
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    block, step = int(0.4 * rate), int(0.1 * rate)
    if x.shape[0] < block:
        return float("-inf")
    steps, pending = [], np.zeros((0, x.shape[1]))
    for piece in _weighted_pieces(x):
        piece = np.concatenate([pending, piece]) if pending.shape[0] else piece
        whole = piece.shape[0] // step * step
        steps.append((piece[:whole] ** 2).reshape(-1, step, x.shape[1]).sum(axis=1))
        pending = piece[whole:]
    energy = np.concatenate(steps)  # (steps, channels): energy of each complete 100 ms step
    per_block = block // step
    count = (x.shape[0] - block) // step + 1
    sums = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(energy, axis=0)])
    # Mean square per block and channel, summed over channels (L/R weights are 1.0).
    power = ((sums[per_block:per_block + count] - sums[:count]) / block).sum(axis=1)
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10 * np.log10(power)
    gated = power[loudness > -70.0]
    if gated.size == 0:
        return float("-inf")
    relative = -0.691 + 10 * np.log10(gated.mean()) - 10.0
    final = power[(loudness > -70.0) & (loudness > relative)]
    return float(-0.691 + 10 * np.log10(final.mean()))
