"""The digits image project's data and its "pretrained" backbone, made here, offline.

scikit-learn ships 1,797 8x8 handwritten digits. The images with an even index become the
project's data: one folder per digit, as PNG files. The backbone is a small CNN pretrained on
the other images of digits 0-4 only, so that the project's model must transfer what the
backbone learned to digits it has never seen (5-9). It is saved as a torch.export program
(.pt2), the format mlplan reads as "local weights".

    python generate.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits


class Backbone(torch.nn.Module):
    """1x8x8 images in, 64 features out."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(16, 32, 3, padding=1)
        self.pool = torch.nn.MaxPool2d(2)
        self.embed = torch.nn.Linear(32 * 4 * 4, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return torch.relu(self.embed(self.pool(x).flatten(1)))


def pixels(image: np.ndarray) -> np.ndarray:
    """Digits' 0-16 grey levels as 0-255."""
    return np.clip(image * 16, 0, 255).astype(np.uint8)


def main(out: Path) -> None:
    digits = load_digits()
    images, target = digits.images, digits.target
    for i in range(0, len(images), 2):
        folder = out / "digits" / str(target[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels(images[i]), mode="L").save(folder / f"{i:04d}.png")

    # Pretraining: the odd-indexed images of digits 0-4, a throwaway head on top.
    torch.manual_seed(0)
    odd = np.arange(1, len(images), 2)
    keep = odd[target[odd] < 5]
    x = torch.tensor(pixels(images[keep]), dtype=torch.float32)[:, None] / 255.0
    y = torch.tensor(target[keep])
    backbone = Backbone()
    head = torch.nn.Linear(64, 5)
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=3e-3)
    for _ in range(30):
        for batch in torch.randperm(len(x)).split(64):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(head(backbone(x[batch])), y[batch])
            loss.backward()
            optimizer.step()
    backbone.eval()
    program = torch.export.export(
        backbone, (x[:2],), dynamic_shapes=({0: torch.export.Dim("n", min=1)},)
    )
    (out / "models").mkdir(parents=True, exist_ok=True)
    torch.export.save(program, out / "models" / "digits-backbone.pt2")
    count = sum(1 for _ in (out / "digits").rglob("*.png"))
    print(f"wrote {count} images in {out / 'digits'} and models/digits-backbone.pt2")
    print(f"(backbone pretrained on {len(keep)} images of digits 0-4; final loss {loss:.3f})")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
