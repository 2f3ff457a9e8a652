"""Stage 2: complete the hidden part of incomplete UV maps (Attention ResCUNet-GAN or a symmetric fill)."""
