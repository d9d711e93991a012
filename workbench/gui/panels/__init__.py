"""One panel per workflow step (Dataset, Method & Training; Threshold, Review, Export later)."""
