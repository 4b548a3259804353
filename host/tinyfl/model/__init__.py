"""Models of the node: the trainable head and its numpy reference (`tinyfl.model.head`)."""
