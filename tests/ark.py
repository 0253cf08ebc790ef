"""What the tests of Ark's route share: its models, its path, the sequential request for
three images (as Ark's SDK takes it and as it goes on the wire), and a client of a mock."""

from __future__ import annotations

from volcenginesdkarkruntime import Ark
from volcenginesdkarkruntime.types.images import SequentialImageGenerationOptions

from mockserver import MockServer

SEEDREAM_40 = "doubao-seedream-4-0-250828"
SEEDREAM_45 = "doubao-seedream-4-5-251128"
GENERATIONS = "/api/v3/images/generations"
FILTERED = "OutputImageSensitiveContentDetected"
THREE = {
    "sequential_image_generation": "auto",
    "sequential_image_generation_options": SequentialImageGenerationOptions(max_images=3),
}
WIRE_THREE = {
    "sequential_image_generation": "auto",
    "sequential_image_generation_options": {"max_images": 3},
}


def client_of(mock: MockServer, key: str = "ark-key") -> Ark:
    return Ark(base_url=mock.url + "/api/v3", api_key=key, max_retries=0)
