#!/usr/bin/env bash
# Regenerates every image of the README's gallery (on a CPU, a few minutes).
# Run from the repository root with the virtual environment active.
set -euo pipefail
G=docs/gallery
R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT

# targets
warpsdf render scenes/airplane.toml --turntable 24 --resolution 128 --elevation 20 --out $G/airplane_target.gif
warpsdf render scenes/torus_ball.toml --resolution 160 --elevation 30 --azimuth 20 --out $G/torus_ball_target.png
warpsdf render scenes/two_spheres_xyz.toml --mode xyz --resolution 160 --out $G/two_spheres_xyz_target.png

# bloating and shrinking sphere sets (the full shipped scenes)
warpsdf fit scenes/spheres_bloat.toml --out $R/bloat --device cpu
cp $R/bloat/optimization.gif $G/spheres_bloat.gif
warpsdf fit scenes/spheres_shrink.toml --out $R/shrink --device cpu
cp $R/shrink/optimization.gif $G/spheres_shrink.gif

# the learning-rate sweep: too-high rates diverge
warpsdf batch scenes/sweeps/lr_sweep.toml --workers 2 --out $R/lr_sweep
cp $R/lr_sweep/contact_sheet.png $G/lr_sweep_contact_sheet.png
cp $R/lr_sweep/loss_curves.png $G/lr_sweep_loss_curves.png

# single-view XYZ reconstruction, CPU-sized
warpsdf fit scenes/two_spheres_xyz.toml --out $R/xyz --device cpu --iterations 200 \
    --set 'cameras.resolution=[32, 32]' --set model.hidden=32 --set march.max_steps=32
cp $R/xyz/optimization.gif $G/two_spheres_xyz_fit.gif
warpsdf render $R/xyz --resolution 160 --azimuth 60 --elevation 20 --out $G/two_spheres_xyz_side.png

# twitchy against clean airplane silhouettes, CPU-sized
Q=(--set 'cameras.resolution=[32, 32]' --set cameras.count=8 --set optim.batch_rays=0 --set optim.iterations=200)
warpsdf fit scenes/airplane_small_fast.toml --out $R/small --device cpu "${Q[@]}"
cp $R/small/optimization.gif $G/airplane_small_fast.gif
cp $R/small/loss.png $G/airplane_small_fast_loss.png
warpsdf fit scenes/airplane_large.toml --out $R/large --device cpu "${Q[@]}" --set model.hidden=32
cp $R/large/optimization.gif $G/airplane_large.gif
cp $R/large/loss.png $G/airplane_large_loss.png
