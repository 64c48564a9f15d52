//! One L-BFGS run from one start of the grid (`argmin`, More-Thuente line search), with the
//! pinned asymptote held fixed.

use std::cell::RefCell;

use argmin::core::{CostFunction, Executor, Gradient, State, TerminationReason};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;

use super::objective::{huber_cost_grad, Prepared};
use super::options::FitOptions;
use crate::law::Law;

/// A point with its objective and gradient.
type Evaluated = (Vec<f64>, f64, Vec<f64>);

/// The objective of one fit: sum of Huber losses of `ln L̂ − ln L`, over the free
/// coordinates of θ (all but `e` when E is pinned).
struct Objective<'a> {
    law: Law,
    data: &'a Prepared,
    delta: f64,
    /// θ with the pinned coordinate filled in; free coordinates are overwritten.
    template: Vec<f64>,
    free: Vec<usize>,
    /// Last (free θ, cost, gradient): L-BFGS asks for the cost and then the gradient at
    /// the same point, and both come from one pass over the data.
    cache: RefCell<Option<Evaluated>>,
}

impl Objective<'_> {
    fn eval(&self, x: &[f64]) -> (f64, Vec<f64>) {
        if let Some((cx, c, g)) = self.cache.borrow().as_ref() {
            if cx.as_slice() == x {
                return (*c, g.clone());
            }
        }
        let mut theta = self.template.clone();
        for (&i, &v) in self.free.iter().zip(x) {
            theta[i] = v;
        }
        let (cost, full) = huber_cost_grad(self.law, &theta, self.data, self.delta);
        let grad: Vec<f64> = self.free.iter().map(|&i| full[i]).collect();
        // A non-finite cost (overflow far from the data) must read as "worse", never NaN,
        // or the line search would accept it.
        let cost = if cost.is_finite() { cost } else { f64::MAX };
        *self.cache.borrow_mut() = Some((x.to_vec(), cost, grad.clone()));
        (cost, grad)
    }
}

impl CostFunction for Objective<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, x: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        Ok(self.eval(x).0)
    }
}

impl Gradient for Objective<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, x: &Vec<f64>) -> std::result::Result<Vec<f64>, argmin::core::Error> {
        let g = self.eval(x).1;
        Ok(g.into_iter()
            .map(|v| if v.is_finite() { v } else { 0.0 })
            .collect())
    }
}
/// Where one start ended.
#[derive(Debug, Clone, PartialEq)]
pub struct StartOutcome {
    /// The start, θ.
    pub start: Vec<f64>,
    /// The end point, θ (the pinned coordinate included).
    pub theta: Vec<f64>,
    /// Objective at `theta` (`f64::MAX` when the start went nowhere finite).
    pub cost: f64,
    /// L-BFGS iterations.
    pub iters: u64,
    /// Whether L-BFGS stopped on its tolerances (rather than the iteration cap or a line
    /// search that could not go on).
    pub converged: bool,
}

/// Runs L-BFGS from one start.
pub fn run_start(law: Law, data: &Prepared, start: &[f64], opts: &FitOptions) -> StartOutcome {
    let mut template = start.to_vec();
    let mut free: Vec<usize> = (0..start.len()).collect();
    if let Some(e) = opts.pin_e {
        template[law.e_index()] = e.ln();
        free.retain(|&i| i != law.e_index());
    }
    let x0: Vec<f64> = free.iter().map(|&i| template[i]).collect();
    let problem = Objective {
        law,
        data,
        delta: opts.huber_delta,
        template: template.clone(),
        free: free.clone(),
        cache: RefCell::new(None),
    };
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), opts.memory)
        .with_tolerance_grad(opts.tol_grad)
        .and_then(|s| s.with_tolerance_cost(opts.tol_cost));
    let outcome = solver.and_then(|solver| {
        Executor::new(problem, solver)
            .configure(|state| state.param(x0.clone()).max_iters(opts.max_iters))
            .timer(false)
            .run()
    });
    let (x, cost, iters, converged) = match outcome {
        Ok(mut res) => {
            let state = &mut res.state;
            let iters = state.get_iter();
            let converged = matches!(
                state.get_termination_reason(),
                Some(TerminationReason::SolverConverged)
            );
            let cost = state.get_best_cost();
            let x = state.take_best_param().unwrap_or_else(|| x0.clone());
            (x, cost, iters, converged)
        }
        Err(_) => (x0.clone(), f64::MAX, 0, false),
    };
    let mut theta = template;
    for (&i, &v) in free.iter().zip(&x) {
        theta[i] = v;
    }
    let cost = if cost.is_finite() { cost } else { f64::MAX };
    StartOutcome {
        start: start.to_vec(),
        theta,
        cost,
        iters,
        converged,
    }
}
