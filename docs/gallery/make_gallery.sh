#!/usr/bin/env bash
# Regenerates every image of the README's gallery on a CPU (about 25 minutes
# of one core; the README's gallery section gives each fit's time). Every fit
# is at 128x128; the neural-SDF experiments are their shipped scenes as they
# are. Run from the repository root with the virtual environment active.
set -euo pipefail
G=docs/gallery
R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT
T="$G/times.txt"  # wall and CPU seconds of each command, as the gallery section quotes them
: > "$T"

timed() {  # timed NAME COMMAND...: run it, append its wall and CPU (user + system) seconds to $T
    local name=$1
    shift
    /usr/bin/time -a -o "$T" -f "$name wall %e s, cpu %U + %S s" "$@"
}

# targets
warpsdf render scenes/airplane.toml --turntable 24 --resolution 128 --elevation 20 --out $G/airplane_target.gif --force
warpsdf render scenes/torus_ball.toml --resolution 160 --elevation 30 --azimuth 20 --out $G/torus_ball_target.png --force
warpsdf render scenes/two_spheres_xyz.toml --mode xyz --resolution 160 --out $G/two_spheres_xyz_target.png --force

# bloating and shrinking sphere sets (the shipped scenes, at 128x128)
S=(--set 'cameras.resolution=[128, 128]')
timed spheres_bloat warpsdf fit scenes/spheres_bloat.toml --out $R/bloat --device cpu "${S[@]}"
cp $R/bloat/optimization.gif $G/spheres_bloat.gif
timed spheres_shrink warpsdf fit scenes/spheres_shrink.toml --out $R/shrink --device cpu "${S[@]}"
cp $R/shrink/optimization.gif $G/spheres_shrink.gif

# the learning-rate sweep: too-high rates diverge
{ sed "s|^base = .*|base = \"$PWD/scenes/spheres_bloat.toml\"|" scenes/sweeps/lr_sweep.toml
  printf '\n[set]\ncameras.resolution = [128, 128]\n'; } > $R/lr_sweep.toml
timed lr_sweep warpsdf batch $R/lr_sweep.toml --workers 2 --out $R/lr_sweep
cp $R/lr_sweep/contact_sheet.png $G/lr_sweep_contact_sheet.png
cp $R/lr_sweep/loss_curves.png $G/lr_sweep_loss_curves.png

# single-view XYZ reconstruction (the shipped scene)
timed two_spheres_xyz warpsdf fit scenes/two_spheres_xyz.toml --out $R/xyz --device cpu
cp $R/xyz/optimization.gif $G/two_spheres_xyz_fit.gif
warpsdf render $R/xyz --resolution 256 --azimuth 60 --elevation 20 --out $G/two_spheres_xyz_side.png --force

# twitchy against clean airplane silhouettes (the shipped scenes)
timed airplane_small_fast warpsdf fit scenes/airplane_small_fast.toml --out $R/small --device cpu
cp $R/small/optimization.gif $G/airplane_small_fast.gif
cp $R/small/loss.png $G/airplane_small_fast_loss.png
timed airplane_large warpsdf fit scenes/airplane_large.toml --out $R/large --device cpu
cp $R/large/optimization.gif $G/airplane_large.gif
cp $R/large/loss.png $G/airplane_large_loss.png

# fast fits: a hash grid and a voxel grid from the sphere, next to the visual hull
timed hashgrid_airplane warpsdf fit scenes/hashgrid_airplane.toml --out $R/hash --device cpu
cp $R/hash/optimization.gif $G/hashgrid_airplane.gif
warpsdf render $R/hash --resolution 256 --azimuth 30 --elevation 25 --out $G/hashgrid_airplane.png --force
timed grid_airplane warpsdf fit scenes/grid_airplane.toml --out $R/grid --device cpu
warpsdf render $R/grid --resolution 256 --azimuth 30 --elevation 25 --out $G/grid_airplane.png --force
warpsdf carve scenes/hashgrid_airplane.toml --out $R/hull.ply --resolution 192
cat > $R/hull.toml <<EOF
[target]
kind = "mesh"
path = "$R/hull.ply"
normalize = false
EOF
warpsdf render $R/hull.toml --resolution 256 --azimuth 30 --elevation 25 --out $G/hull_airplane.png --force
warpsdf render scenes/hashgrid_airplane.toml --resolution 256 --azimuth 30 --elevation 25 --out $G/airplane_target.png --force

# the missing back wall (the shipped noclip scene, 64x64) and the same fit with the wall
timed two_spheres_xyz_noclip warpsdf fit scenes/two_spheres_xyz_noclip.toml --out $R/noclip --device cpu
timed two_spheres_xyz_clip warpsdf fit scenes/two_spheres_xyz_noclip.toml --out $R/clip --device cpu --set march.clip_back=true
for run in noclip clip; do
    python docs/gallery/thin_gif.py $R/$run/optimization.gif $G/two_spheres_xyz_${run}_fit.gif 3 128
    warpsdf render $R/$run --mode xyz --resolution 160 --out $G/two_spheres_xyz_${run}_result.png --force
    warpsdf render $R/$run --mode xyz --resolution 160 --azimuth 90 --out $G/two_spheres_xyz_${run}_side.png --force
done
# the study table's rows and thumbnails (docs/gallery/noclip_study/; about 30 minutes)
python docs/gallery/noclip_study.py
