"""The fusion model, its pooling layers and losses. Pure torch: knows nothing of files or the store."""
