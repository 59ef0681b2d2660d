"""The refiner: an autoencoder pretrained on face crops, then given skip connections and
fine-tuned on self-reenactment pairs to make forgeries harder (FaceForensics, Rössler et al. 2018).
"""
