"""Speech recognition (sequence → sequence, unaligned): 16 kHz waveform in, text out, trained with CTC."""
