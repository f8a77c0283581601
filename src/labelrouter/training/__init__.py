"""The training graph (mine_feedback → build_datasets → train_head → evaluate → promote) lands here.

What inference already provides for it: every processed message is stored with its embedding and encoder
version (`labelrouter.store`), and heads are saved and loaded in the `labelrouter.head/v1` format
(`labelrouter.models.head`), which a trained head only has to write.
"""
