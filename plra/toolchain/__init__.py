"""The toolchain layer: the pipeline that trains, deploys and evaluates a model of the field.

Owns the three environments (`envs`, standard library only), base model weights (`model`), XTuner training
(`train`), LMDeploy quantization (`quantize`) and serving (`serve`), OpenCompass evaluation (`evaluate`) with its
judge-free scorer (`scoring`), the pipeline that runs every stage (`pipeline`), and the entry points that run
inside the other envs (`workers`). It may import the data builders, the knowledge layer and the base modules. It
reaches the assistant in one place only: the pipeline's example stage (`examples`, run as its own process), which
asks the served model real questions through the assistant and the agent.
"""
