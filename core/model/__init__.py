"""The label ranking model: encoders, training, index, sparse backend, fusion, rankers, bundles, metrics."""
