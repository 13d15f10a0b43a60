"""The media front end's stages, one module each: decode (PyAV), audio features (openSMILE),
faces (detection + tracking), face embedders (pixels, VGG-Face via onnxruntime).

`auxformer.runtime.features` chains them into one clip's features; nothing here imports torch.
"""
