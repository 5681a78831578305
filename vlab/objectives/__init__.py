"""Training objectives, each ``loss(params, batch, key, hp) -> (loss, aux)``: the VAE's ELBO and IWAE bound, the
GM-VAE's, flows' forward and reverse KL, and GAN games."""
