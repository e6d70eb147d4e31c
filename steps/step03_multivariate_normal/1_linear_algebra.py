"""Step 3.1 - The linear algebra of several variables, in NumPy.

Steps 1 and 2 dealt with one number per observation (a height). Most data
has several numbers that move together: taller people weigh more. A data
point becomes a vector x of D numbers, and a normal distribution for vectors
needs a mean vector and a covariance matrix. Before the density (step 3.2),
the tools it is written with: vectors, matrices, the inner product x . y =
sum_i x_i y_i, the matrix product (A B)_ij = sum_k A_ik B_kj, the transpose,
the determinant and the inverse.

The figure shows what a matrix does geometrically, and a fact the course
uses to generate data (step 3.3, and the mixtures of steps 4 and 5): if
z ~ N(0, I) then x = M z has covariance M M^T (M is another matrix than the
A the script prints).

    python steps/step03_multivariate_normal/1_linear_algebra.py [--quick] [--out OUT] [--show] [--seed SEED]
"""
import numpy as np

from zero.cli import check, check_within_standard_errors, out_dir, step_parser
from zero.plot import figures, save, show

args = step_parser(__doc__).parse_args()
folder = out_dir(args, __file__)
plt = figures(args.show)

# ---- hyper-parameters -------------------------------------------------------------------------
N_POINTS = 2_000 if args.quick else 20_000
rng = np.random.default_rng(args.seed)

# ---- vectors and the inner product ----------------------------------------------------------------
x = np.array([1.0, 2.0, 3.0])
y = np.array([4.0, 5.0, 6.0])
print(f"x = {x}, shape {x.shape}")
print(f"x . y = sum_i x_i y_i = {np.dot(x, y)} (also x @ y = {x @ y})")
print(f"|x| = sqrt(x . x) = {np.sqrt(x @ x):.4f}")

# ---- matrices, the matrix product, transpose ----------------------------------------------------
A = np.array([[1.0, 2.0], [3.0, 4.0]])
B = np.array([[5.0, 6.0], [7.0, 8.0]])
print(f"A =\n{A}\nA^T =\n{A.T}")
print(f"A @ B (rows of A dotted with columns of B) =\n{A @ B}")
print(f"A * B is elementwise, not the matrix product:\n{A * B}")
print(f"A @ B == B @ A ? {np.allclose(A @ B, B @ A)} (the matrix product does not commute)")

# ---- determinant and inverse ---------------------------------------------------------------------
print(f"det(A) = 1*4 - 2*3 = {np.linalg.det(A):.4f}")
check(np.isclose(np.linalg.det(A), 1 * 4 - 2 * 3, rtol=1e-12, atol=0), f"det(A) = {np.linalg.det(A):.12f}, by hand -2")
A_inverse = np.linalg.inv(A)
print(f"inv(A) =\n{A_inverse}\nA @ inv(A) =\n{np.round(A @ A_inverse, 12)}")
check(np.allclose(A @ A_inverse, np.eye(2), rtol=0, atol=1e-12), f"A @ inv(A) is not the identity:\n{A @ A_inverse}")

# ---- a matrix M maps the unit circle to an ellipse; covariance of M z is M M^T ---------------------------
M = np.array([[2.0, 0.0], [1.2, 0.8]])                     # any invertible matrix (not the A above)
angle = np.linspace(0, 2 * np.pi, 200)
circle = np.stack([np.cos(angle), np.sin(angle)])          # (2, 200): columns are points
ellipse = M @ circle
z = rng.standard_normal((N_POINTS, 2))                     # z ~ N(0, I), rows are points
samples = z @ M.T                                          # x_n = M z_n for every row at once
sample_covariance = samples.T @ samples / N_POINTS         # 1/N sum_n x_n x_n^T (the mean is 0)
print(f"M =\n{M}\nM M^T =\n{M @ M.T}\ncovariance of {N_POINTS} samples x = M z =\n{np.round(sample_covariance, 3)}")
# for x ~ N(0, S), entry ij of the sample covariance has the standard error sqrt((S_ii S_jj + S_ij^2) / N)
S = M @ M.T
check_within_standard_errors("the covariance of the samples x = M z, against M M^T", sample_covariance, S,
                             np.sqrt((np.outer(np.diag(S), np.diag(S)) + S ** 2) / N_POINTS))

fig, (ax_z, ax_x) = plt.subplots(1, 2, figsize=(10, 5))
ax_z.scatter(z[:, 0], z[:, 1], s=2, alpha=0.3)
ax_z.plot(circle[0], circle[1], "r")
ax_z.set(title="z ~ N(0, I) and the unit circle", xlabel="z1", ylabel="z2", aspect="equal",
         xlim=(-5, 5), ylim=(-5, 5))
ax_x.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.3)
ax_x.plot(ellipse[0], ellipse[1], "r")
ax_x.set(title="x = M z: covariance M M^T", xlabel="x1", ylabel="x2", aspect="equal",
         xlim=(-8, 8), ylim=(-8, 8))
save(fig, folder, "matrix_as_a_map")
show()
