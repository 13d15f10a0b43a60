"""The media front end's stages, one module each: decode (PyAV), audio features (openSMILE),
faces (detection + tracking), face alignment, face embedders (expression and VGG-Face via onnxruntime,
pixels), and the face models shipped with the package (`models/`).

`auxformer.runtime.features` chains them into one clip's features; nothing here imports torch.
"""
