"""Builders that turn the knowledge base into training data: pretrain text, SFT conversations, DPO pairs."""
