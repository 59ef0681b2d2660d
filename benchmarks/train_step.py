"""Training-step throughput of the engine: crops/s for fp32, bf16 and fp16 autocast.

It runs :func:`forensics.training.engine.train_one_epoch` (the loop ``forensics train`` runs) over
batches already on the device, so the figure is the model's and the loop's, not the
loader's (``benchmarks/loader.py`` measures that). Each precision gets the same model,
optimizer (Adam), batch and number of steps, after warm-up steps that are not timed; the
table prints crops/s and the ratio to fp32 measured in the same run.

Usage::

    python benchmarks/train_step.py                                     # legacy_xception 299, batch 32
    python benchmarks/train_step.py --model mobilenetv3_small_050 --size 224 --batch-size 128
    python benchmarks/train_step.py --device cpu --steps 3 --warmup 1 --amp none bf16
"""

from __future__ import annotations

import argparse
import platform
import time


def measure(model_name: str, size: int, batch_size: int, amp: str, steps: int, warmup: int,
            device: str, channels_last: bool) -> float:
    """Crops/s of ``steps`` timed optimizer steps of one freshly built model."""
    import torch

    from forensics.training.engine import train_one_epoch
    from forensics.models import create_model
    from forensics.training.tasks import BinaryTask

    torch.manual_seed(0)
    dev = torch.device(device)
    net = create_model(model_name, num_classes=1, pretrained=False).to(dev)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    scaler = torch.amp.GradScaler(dev.type) if amp == "fp16" else None
    image = torch.randn(batch_size, 3, size, size, device=dev)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    batch = {"image": image, "target": torch.randint(0, 2, (batch_size,), device=dev).float()}
    task = BinaryTask()

    def run(n: int) -> None:
        train_one_epoch(net, task, [batch] * n, opt, lambda b: b, epoch=0, scaler=scaler,
                        amp_dtype=dtype, log_every=10**9)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    run(warmup)
    tic = time.perf_counter()
    run(steps)
    return steps * batch_size / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="legacy_xception")
    parser.add_argument("--size", type=int, default=299)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--amp", nargs="+", default=["none", "bf16", "fp16"], choices=["none", "bf16", "fp16"])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()

    import torch

    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"{args.model} {args.size}x{args.size}, batch {args.batch_size}, {args.steps} steps, "
          f"{where}, torch {torch.__version__}")
    base = None
    for amp in args.amp:
        rate = measure(args.model, args.size, args.batch_size, amp, args.steps, args.warmup, args.device,
                       args.channels_last)
        base = base or rate
        print(f"  amp={amp:5s} {rate:9.1f} crops/s  {rate / base:5.2f}x fp32" if args.amp[0] == "none"
              else f"  amp={amp:5s} {rate:9.1f} crops/s  {rate / base:5.2f}x {args.amp[0]}")


if __name__ == "__main__":
    main()
