"""One aligned face chip, for the embedding engine's start-up self-check.

A 150x150 chip exactly as ``dlib.get_face_chip(image, shape, size=150, padding=0.25)``
cut it from ``lfw-dev/Alice_Fisher/Alice_Fisher_0001.jpg`` (Labeled Faces in the Wild),
stored as a JPEG (quality 85, 3324 bytes). It lives in a Python module rather than a
data file so that it ships with every kind of install without package-data settings.
The check compares the engine with dlib on the *decoded* pixels, so the JPEG decoder
in use does not matter.
"""
from __future__ import annotations

import base64
import io

import numpy as np

_JPEG_BASE64 = (
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAUDBAQEAwUEBAQFBQUGBwwIBwcHBw8LCwkMEQ8SEhEPERETFhwXExQa"
    "FRERGCEYGh0dHx8fExciJCIeJBweHx7/2wBDAQUFBQcGBw4ICA4eFBEUHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4e"
    "Hh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh7/wAARCACWAJYDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAA"
    "AAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAk"
    "M2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKT"
    "lJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
    "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh"
    "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
    "anN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk"
    "5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDmvhxYXWt6ksrqdoPWvo7Q9OjtLRFHDAVy/wAOPDltplmiog3+"
    "uK7eTES7e9eA3qdkTE8TzbLOQhugr5m8WwHVPExLDIVv619A+OrjybGfB/hrxbT7fzdQknYZy5rCR1UUaGl2Swxq"
    "gGBWpFEAdtECjPTpUxwp3VndndEWOJRSyIAOKQPzQz1tFFSIwpoZTTt1IzHGa1Rk0RsBiq8yinyydRUEjEjNNEMq"
    "3aAr0rInh+bcBWrcPxVQ8iqiZT2Oj8N3pW08ot+FakRAfNcjp0vlP1reW4zFuzXTCVjhqJl6+hWaMkDJrn5kaKbB"
    "rd06cSgqTWfrcQRt4rRM5nczLqNXxgUUxJQ3U0VopoR9CaDbLBYrIfvYp93IXY57U2WVYYwgNUp7gBGZjgAGvJ50"
    "ztSPP/ihqISIw7uTkVxelxhlDY6nNT/EW9F1rJiV8jcaitZktoFB9Klq52UUayoEGT0NNeaIcMc1hX+rTv8ALExw"
    "Kzmu7tjksacaVzSU7HWI6FsA5qdU3dq5OzvZhIAxJrptOug6jNactgVS5K0ZzxS+WStWMBjS/KKQOZmzQDqarTbF"
    "HLCrWozpGDzXK6reuWIQmtFG5lKZdupoQeWH51XEsbH5WrCeO6lOQWo8q7iGTmtVTMnO5vBtr5zxWpbzhrc81yUd"
    "66riStLT75TGRmixE1dG9pN5snIJq/qzebb7h6VyMd1suQc8ZrpYZRNacHPFWmcsonNyTMkrLRTL+Nhct9aKLMix"
    "9DXEzMMk5rM8Q3y2+nOxODtqxPKIeGNcL8RNXH2V40btXlxO1I841S7N1r7ODkbjWnsmmwO1YWjo018XYd669DHD"
    "BnHOK15dTojKyFtLOCOLMpXPvUEzWSkjK5rn7/ULm8ujDaseDjrWZeRahFMFlcg/Wu2nT0MZ1NTqSIN+VIq7ZTBS"
    "MGud06C4MQYsSK1bMMrAGlUpNamkHc6q1LSIDUN1KYicmkspdsQ5rK1y7IJANYRWpclZFHVLxZJCu6qSxRFPNYg+"
    "1UnDzSk+9adhZmdBGTiumCOdyHRXVjGvz7RioptQspn2qVxWV4r082zgLIRn0NYrwyQ2wkEhz9a6ElY53J3OhvoI"
    "35Qg/SsxS9u5yTim6RdPKmGJNaM9uJEyBzWMtC1Jspmcs4INdToV2DDtZu1cZdI8T5q/pN2RFgNzUomR0zxrLKxG"
    "OtFVNLuCS240VomjFnqeqahuLNmvNPFNw9zdFc8Zrsta+QMM1w98N0zHqe1eYoWR2pi6JaomWxzWncQPJHhe9V9F"
    "QlTu9a3YIhgUuazOuFO6OMtLGWw1BpNpOTml1CK4u7veYyAK7Y2scsm51Ax7UfZYQ3Cj8q7KdayMp4e7OcsEMcAV"
    "kNXYoV64rQntUA+UVAybRUVK7ehVKk0wQ7UxmsXVgSSTWwBms3U0FRSd3qaVVoZVqgL4NalvujwyVSgjG+taCH93"
    "XTKVnockYXMjVLOS/lLOeg4rKuNIkI8s5xXYRxqpyalEEL/Nij2jKdA5Cy0oQLwOavRQYXBrXuYkU8CqMowTTTuL"
    "2VjK1C0V0JA5rDiRoZ2GDiuiuG61lYV7jB9adjCpoWLG4KZzxRVwafuQMo60VaicrZ6L4lwqsa4lsGVmNdv4lQur"
    "AVxtxCY0YmuFPQ7IrUn0ogk1tW7jIANc3o02ZGGa14pCrmspI9Shsasj/u+vNQeaR0psbF1qe3h3daEbNIaMuuaq"
    "XJIfFXrsiFMCsyWcZyaqyJehbtbcyLmqOsWhRSTU9rqIiyMVla7qxYFRWtNJnLVkUV4fGa1rJyQBXO287Oc4rVsZ"
    "yGANdPIrHOpampOmBmojIUGKuRjzEyKq3cYFZ2OqOqK8soIyaoyv1qacgCqE596pGcmVrlsg1hSXHlXnJ71s3HIr"
    "nNTjYXG4etaxRxVT0LRpEms1NFYXhm/2W5Rj0FFbHE2era4vJyK4TxDOIlcZxXf+IFJTIrzbxHE7ua8uKPQiUPD1"
    "wWumBNdVFgnNcpolsYpi1dPGcIKmorHoUZaGpagY61fiUKM1l2ZJA9a0PMOzFTFm7kU7xi8pHvVaS03VeZRndmkb"
    "BGdwFUQ3fYpGwAX8KzbzSjIC2K2HuI1OGkAqGW/t0U/vF/OtacWZuk2c9FYtG+3FXEtyCMCpGvrd5Mbl/Cpo5FYg"
    "rzXRrY5507Mu2WVQAiq1/kk1NHIeM026AK5rMuL0MaUnJBqnN0rQnXJPFUrgVaIbM+bk1n3sBbkCtMpufHap2tMo"
    "CBW0UcdVmLpUEoL4Haiup0uxjKE7eaK0OQ9M1DEsNcZr1oAjNiuticNb5zWTq8XmwNgV5tPVna/dRx2nx5citVEy"
    "AKzo2Fsz7uKt2E4mPBqq0bnTh5mrbALVtyGTAqlEGzyauwlSK41ozsuQSTpBGxcGuS17xMkG5Iyc10epQvOrKGIr"
    "nZ/C8U7lnAJraLRrScY7nI3GvXs8hKFsGq09/f7CSzV2p8NRwj5VH5UNoUbL8yV2U2js9pTaPO4tT1BJ8/MRmus8"
    "Oa1O8ipKDWiNEtUzmMZpItNhjlDImCK1lJHnV5x5tDolJkUMKfMT5dQ2LbQFJ7VJePheK527s5eZFGUgZqjdNxxV"
    "qY55qlcHIq4oznoVd4Q5JrdsRHLZk5GcVyWqzbIyVPNWNB1CUxFTXRFHn1JanR6fIVZ1HainaVEWVnPeirujLU6+"
    "3nAi25okIZCvqKx1usPjdWhbSbhnrXiUp6npyjc5LxRE0G9hxWL4b1UfavKZuScV1viuATWz4HOK8mkkk0/Ui+7A"
    "BrufvIyjLlZ7BE5Zcg8VaikAWuU8M6xHd24XeC31rfilyOtcso2Z30pcyJ5ZNzcVGxIPWgkFs1MkYbk1nc0bZAxZ"
    "uMcVBMHHAFayxLtHFRyRKT0raEyHzGSYGIzioGiKnpW6yKsZxWdOVBNbc1yJR0KBLJyKR5GYYJpbhx2qm82KIo5n"
    "e5JKRtPNZt1MFVsmn3FwNjc1kX0jNGcVvFClLQpzyefIVzkVraHbDcAKzNNgyxLda6vQrYAZroWxwzWpuWUQjiGB"
    "2opxlVFC5oqGwSM4zfv+vet7TZAygA1y8ykSZrT0m5KuBXgwZ6jWhsapa+ZC30rx3xpAIbp+D1r2tJldPmwciuG8"
    "c6Il0sksY+b0xXo05aHPKJ5/4Nupo73AY7c16XBcsYwQea820CyntNUKOpxmvRbULsHbis5nRRZdhueeTWhbz+9Y"
    "jowOR0py3LKMVgdDkdGLgAU1p8msJL0jqakOoJjrW8EYus0alzcYQisia5BJ5qvdagG6Gsye6JJxWyiQ6raJ7y45"
    "ODWe9wScZpkzNJSRQHOTVpGPMJy5pLyMCL3rQhhUDkVUveuO1aJ2ImyvYR966axkWKHOecVzlqdrYq89wQNoPFPm"
    "Odo1XugTnNFYzSN60VPMFjWnzv5NTWh2sCKKK8imelLY2YpjtFUtVkPlknmiiu6CMJGBBbwSXO7ZhqvyKUAAxRRU"
    "TNaJJG+5NpFAhB70UVidDIp4ABwaoTRkHhqKK2gYTKzK396kEeTyaKK6VsZksUIJq2sKgUUVSIYpUBTWXecyEUUU"
    "MiQxVwuahDsxoorFk2JQ5PFFFFK4WP/Z"
)


def reference_chip() -> np.ndarray:
    """The chip as a (150, 150, 3) uint8 RGB array."""
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(_JPEG_BASE64))) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
