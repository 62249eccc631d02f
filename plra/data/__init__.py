"""The data layer: builders that turn the knowledge base into training data (pretraining text, SFT conversations,
DPO pairs, the manifest and the leakage guard against the benchmark), and model-written QA kept for review (`synth`).
They read the knowledge layer and take their prompt templates from `plra.prompts`, the one place the assistant
reads too; they never import the assistant, research or toolchain packages.
"""
