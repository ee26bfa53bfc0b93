"""Linear solves: forward and implicit gradients against a dense pseudo-inverse oracle."""

import numpy as np
import pytest
import sympy as sp

import dpgen as dp
from dpgen.errors import NotLinearError, SingularSystemWarning, SolverError

dx, dy = sp.symbols("dx dy", positive=True)
PARAMS = {"dx": 0.7, "dy": 1.3}


def laplacian(bc):
    p, b = dp.fields("p b", ndim=2, bc=bc)
    return dp.Stencil(f"lap_solve_{bc}", {b: (p[1, 0] - 2 * p[0, 0] + p[-1, 0]) / dx**2
                                          + (p[0, 1] - 2 * p[0, 0] + p[0, -1]) / dy**2})


def variable_coefficient(bc):
    """div(k grad p) with face-averaged k: self-adjoint, coefficient field k."""
    p, k, b = dp.fields("p k b", ndim=2, bc=bc)
    fx = lambda s: (k[0, 0] + k[s, 0]) / 2 * (p[s, 0] - p[0, 0])  # noqa: E731
    fy = lambda s: (k[0, 0] + k[0, s]) / 2 * (p[0, s] - p[0, 0])  # noqa: E731
    return dp.Stencil(f"vc_solve_{bc}", {b: (fx(1) + fx(-1)) / dx**2 + (fy(1) + fy(-1)) / dy**2 - 0.1 * p[0, 0]})


def advection_diffusion(bc):
    """-lap(p) + c * central difference + p: not self-adjoint, nonsingular."""
    p, b = dp.fields("p b", ndim=2, bc=bc)
    c = sp.Symbol("c")
    return dp.Stencil(f"advdiff_solve_{bc}", {b: -(p[1, 0] - 2 * p[0, 0] + p[-1, 0]) / dx**2
                                              - (p[0, 1] - 2 * p[0, 0] + p[0, -1]) / dy**2
                                              + c * (p[1, 0] - p[-1, 0]) + p[0, 0]})


def dense(solve, shape, coeffs):
    """The operator as a dense matrix, column by column through the generated kernel."""
    k = dp.compile(solve.stencil, wrt=())
    cols = []
    for j in range(int(np.prod(shape))):
        e = np.zeros(int(np.prod(shape)))
        e[j] = 1.0
        cols.append(k.forward(**{solve.unknown: e.reshape(shape)}, **coeffs)[solve.rhs].ravel())
    return np.array(cols).T


def rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


@pytest.mark.parametrize("shape", [(16, 16), (24, 20)])
@pytest.mark.parametrize("bc", ["periodic", "zero", "edge"])
def test_laplacian_solve_and_gradient_match_the_pseudo_inverse(bc, shape):
    rng = np.random.default_rng(0)
    solve = dp.LinearSolve(laplacian(bc), unknown="p", rtol=1e-12)
    assert solve.self_adjoint and solve.method == "cg"
    A = dense(solve, shape, PARAMS)
    pinv = np.linalg.pinv(A)
    b = rng.standard_normal(shape)
    g = rng.standard_normal(shape)  # cotangent with a non-zero mean
    singular = bc != "zero"
    if singular:
        b -= b.mean()
    p = solve.forward(b=b, **PARAMS)["p"]
    assert rel(p.ravel(), pinv @ b.ravel()) <= 1e-8
    grads = solve.vjp({"p": g}, b=b, p=p, **PARAMS)
    assert rel(grads["b"].ravel(), pinv.T @ g.ravel()) <= 1e-8  # nullspace handled in the backward too
    # d/d(dx): -lambda^T (dA/d dx) p, checked by central differences of the dense solve
    h = 1e-6
    def loss(dx_):
        Ah = dense(solve, shape, {**PARAMS, "dx": dx_})
        return float(g.ravel() @ (np.linalg.pinv(Ah) @ b.ravel()))
    fd = (loss(PARAMS["dx"] + h) - loss(PARAMS["dx"] - h)) / (2 * h)
    assert abs(grads["dx"] - fd) <= 1e-6 * abs(fd)
    f_it, b_it = solve.forward_info.iterations, solve.backward_info.iterations
    assert solve.forward_info.converged and abs(b_it - f_it) <= 0.25 * f_it + 5


@pytest.mark.parametrize("shape", [(16, 16), (24, 20)])
@pytest.mark.parametrize("bc", ["periodic", "zero", "edge"])
def test_variable_coefficient_gradient_wrt_the_coefficient_field(bc, shape):
    rng = np.random.default_rng(1)
    solve = dp.LinearSolve(variable_coefficient(bc), unknown="p", rtol=1e-12)
    assert solve.self_adjoint
    k = 1 + 0.5 * rng.random(shape)
    b, g = rng.standard_normal(shape), rng.standard_normal(shape)
    p = solve.forward(b=b, k=k, **PARAMS)["p"]
    A = dense(solve, shape, {"k": k, **PARAMS})
    assert rel(p.ravel(), np.linalg.solve(A, b.ravel())) <= 1e-8
    grads = solve.vjp({"p": g}, b=b, k=k, **PARAMS)  # re-solves for p itself
    assert rel(grads["b"].ravel(), np.linalg.solve(A.T, g.ravel())) <= 1e-8
    # Oracle for k_bar = -lambda^T (dA/dk) p: A is linear in k, so (dA/dk_j) p = A(e_j) p exactly
    lam = np.linalg.solve(A.T, g.ravel())
    x = np.linalg.solve(A, b.ravel())
    plain = dp.compile(solve.stencil, wrt=())
    oracle = np.empty(k.size)
    for j in range(k.size):
        e = np.zeros(k.size)
        e[j] = 1.0
        a_e_p = plain.forward(p=x.reshape(shape), k=e.reshape(shape), **PARAMS)["b"].ravel()
        a_0_p = plain.forward(p=x.reshape(shape), k=np.zeros(shape), **PARAMS)["b"].ravel()
        oracle[j] = -lam @ (a_e_p - a_0_p)
    assert rel(grads["k"].ravel(), oracle) <= 1e-8


@pytest.mark.parametrize("shape", [(16, 16), (24, 20)])
@pytest.mark.parametrize("bc", ["periodic", "zero", "edge"])
def test_non_self_adjoint_operator_uses_the_transposed_stencil(bc, shape):
    rng = np.random.default_rng(2)
    solve = dp.LinearSolve(advection_diffusion(bc), unknown="p", rtol=1e-12)
    assert not solve.self_adjoint and solve.method == "bicgstab"
    params = {**PARAMS, "c": 0.8}
    A = dense(solve, shape, params)
    b, g = rng.standard_normal(shape), rng.standard_normal(shape)
    p = solve.forward(b=b, **params)["p"]
    assert rel(p.ravel(), np.linalg.solve(A, b.ravel())) <= 1e-8
    grads = solve.vjp({"p": g}, b=b, p=p, **params)
    assert rel(grads["b"].ravel(), np.linalg.solve(A.T, g.ravel())) <= 1e-8
    h = 1e-6
    loss = lambda c: float(g.ravel() @ np.linalg.solve(dense(solve, shape, {**params, "c": c}), b.ravel()))  # noqa: E731
    fd = (loss(0.8 + h) - loss(0.8 - h)) / (2 * h)
    assert abs(grads["c"] - fd) <= 1e-6 * abs(fd)


def test_singular_rhs_with_a_mean_is_warned_and_projected():
    solve = dp.LinearSolve(laplacian("periodic"), unknown="p", rtol=1e-12)
    b = np.random.default_rng(3).standard_normal((8, 8)) + 2.0
    with pytest.warns(SingularSystemWarning, match="mean"):
        p = solve.forward(b=b, **PARAMS)["p"]
    assert abs(p.mean()) < 1e-12
    lap = dp.compile(laplacian("periodic"), wrt=()).forward(p=p, **PARAMS)["b"]
    np.testing.assert_allclose(lap, b - b.mean(), atol=1e-9)


def test_non_convergence_and_bad_operators_raise():
    solve = dp.LinearSolve(laplacian("zero"), unknown="p", rtol=1e-12, maxiter=3)
    with pytest.raises(SolverError, match="NOT converged in 3 iterations"):
        solve.forward(b=np.random.default_rng(4).standard_normal((16, 16)), **PARAMS)
    p, q, b = dp.fields("p q b", ndim=1)
    with pytest.raises(NotLinearError, match="not linear"):
        dp.LinearSolve(dp.Stencil("nl", {b: p[0] ** 2}), unknown="p")
    with pytest.raises(NotLinearError, match="not linear"):
        dp.LinearSolve(dp.Stencil("affine", {b: p[0] + 1}), unknown="p")
    with pytest.raises(SolverError, match="not self-adjoint"):
        dp.LinearSolve(dp.Stencil("onesided", {b: p[1] - p[0]}), unknown="p", method="cg")


def test_gradient_error_shrinks_with_the_tolerance():
    rng = np.random.default_rng(5)
    shape = (16, 16)
    stencil = laplacian("zero")
    A = dense(dp.LinearSolve(stencil, unknown="p"), shape, PARAMS)
    b, g = rng.standard_normal(shape), rng.standard_normal(shape)
    exact = np.linalg.solve(A.T, g.ravel())
    errors = []
    for tol in (1e-2, 1e-6, 1e-10):
        solve = dp.LinearSolve(stencil, unknown="p", rtol=tol)
        errors.append(rel(solve.vjp({"p": g}, b=b, **PARAMS)["b"].ravel(), exact))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-8


@pytest.mark.parametrize("boundary", ["closed", "periodic"])
def test_pressure_projection_is_divergence_free_and_its_vjp_is_its_transpose(boundary):
    from dpgen.solvers.projection import PressureProjection

    rng = np.random.default_rng(6)
    proj = PressureProjection(boundary, rtol=1e-12)
    shape, spacing = (16, 12), {"dx": 0.5, "dy": 0.7}
    u, v = rng.standard_normal(shape), rng.standard_normal(shape)
    out = proj.forward(u=u, v=v, **spacing)
    assert np.abs(proj.divergence(out["u"], out["v"], **spacing)).max() <= 1e-9 * np.abs(proj.divergence(u, v, **spacing)).max()
    again = proj.forward(u=out["u"], v=out["v"], **spacing)  # a projection: idempotent
    np.testing.assert_allclose(again["u"], out["u"], atol=1e-9)
    gu, gv = rng.standard_normal(shape), rng.standard_normal(shape)
    grads = proj.vjp({"u": gu, "v": gv}, **spacing)
    lhs = np.vdot(out["u"], gu) + np.vdot(out["v"], gv)
    rhs = np.vdot(u, grads["u"]) + np.vdot(v, grads["v"])
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)  # dot-product test through the implicit solve


def test_pressure_demo_decreases_monotonically(tmp_path, capsys):
    from dpgen.demos import pressure

    assert pressure.run(iterations=15, out=tmp_path / "p.png") == 0
    text = capsys.readouterr().out
    assert "monotone: True" in text and (tmp_path / "p.png").exists()
    div = float(text.split("max |div u_n| = ")[1].split()[0])
    assert div < 1e-8


def test_jacobi_preconditioning_cuts_iterations_for_rough_coefficients():
    rng = np.random.default_rng(7)
    shape = (32, 32)
    k = np.exp(3 * rng.random(shape))  # coefficients over a factor of 20
    b = rng.standard_normal(shape)
    plain = dp.LinearSolve(variable_coefficient("zero"), unknown="p", rtol=1e-10, preconditioner=None)
    jacobi = dp.LinearSolve(variable_coefficient("zero"), unknown="p", rtol=1e-10)
    x0 = plain.forward(b=b, k=k, **PARAMS)["p"]
    x1 = jacobi.forward(b=b, k=k, **PARAMS)["p"]
    assert jacobi.forward_info.method == "jacobi-cg" and plain.forward_info.method == "cg"
    assert jacobi.forward_info.iterations < 0.8 * plain.forward_info.iterations
    np.testing.assert_allclose(x1, x0, rtol=1e-7, atol=1e-8 * np.abs(x0).max())
    g = rng.standard_normal(shape)
    g0 = plain.vjp({"p": g}, b=b, k=k, p=x0, **PARAMS)
    g1 = jacobi.vjp({"p": g}, b=b, k=k, p=x1, **PARAMS)
    for name in ("b", "k", "dx"):
        assert rel(g1[name], g0[name]) <= 1e-7


def test_unrolled_mode_matches_finite_differences_and_learns_initial_guesses():
    rng = np.random.default_rng(8)
    shape = (10, 8)
    k = 1 + rng.random(shape)
    b, g, x0 = rng.standard_normal(shape), rng.standard_normal(shape), rng.standard_normal(shape)
    unrolled = dp.LinearSolve(variable_coefficient("zero"), unknown="p", unrolled=6, preconditioner=None)
    implicit = dp.LinearSolve(variable_coefficient("zero"), unknown="p", rtol=1e-12)
    grads = unrolled.vjp({"p": g}, b=b, k=k, initial_guess=x0, **PARAMS)
    assert np.abs(grads["initial_guess"]).max() > 1e-6  # the unrolled path depends on the start
    assert np.all(implicit.vjp({"p": g}, b=b, k=k, initial_guess=x0, **PARAMS)["initial_guess"] == 0)

    def loss(**change):
        args = {"b": b, "k": k, "initial_guess": x0, **PARAMS, **change}
        return float(np.vdot(g, unrolled.forward(**args)["p"]))

    h = 1e-6
    for name, base in (("b", b), ("k", k), ("initial_guess", x0)):
        v = rng.standard_normal(shape)
        fd = (loss(**{name: base + h * v}) - loss(**{name: base - h * v})) / (2 * h)
        assert abs(float(np.vdot(grads[name], v)) - fd) <= 1e-6 * max(abs(fd), 1e-3), name
    fd = (loss(dx=PARAMS["dx"] + h) - loss(dx=PARAMS["dx"] - h)) / (2 * h)
    assert abs(grads["dx"] - fd) <= 1e-6 * abs(fd)


def test_implicit_backward_memory_does_not_grow_with_iterations():
    import tracemalloc

    rng = np.random.default_rng(9)
    shape = (64, 64)
    g = rng.standard_normal(shape)
    peaks, iterations = [], []
    for tol in (1e-2, 1e-12):
        solve = dp.LinearSolve(laplacian("zero"), unknown="p", rtol=tol, wrt=())
        solve.vjp({"p": g}, **PARAMS)  # warm up kernels and buffers
        tracemalloc.start()
        try:
            solve.vjp({"p": g}, **PARAMS)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        iterations.append(solve.backward_info.iterations)
    assert iterations[1] > 2.5 * iterations[0]
    assert peaks[1] <= 1.1 * peaks[0], (peaks, iterations)
