//! The fault-injection seam: in test builds each step asks here whether to fail, and records
//! that it ran. In other builds `check` is an empty inline function.

#[cfg(not(test))]
#[inline(always)]
pub(crate) fn check(_step: crate::Step) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
pub(crate) use self::seam::check;

#[cfg(test)]
pub(crate) mod seam {
    use std::cell::RefCell;
    use std::io;

    use crate::Step;

    #[derive(Default)]
    struct Plan {
        /// Fail the n-th step (0-based) with this raw OS error.
        fail_at: Option<(usize, i32)>,
        seen: Vec<Step>,
    }

    thread_local! {
        static PLAN: RefCell<Plan> = RefCell::new(Plan::default());
    }

    pub(crate) fn check(step: Step) -> io::Result<()> {
        PLAN.with(|p| {
            let mut p = p.borrow_mut();
            let index = p.seen.len();
            p.seen.push(step);
            match p.fail_at {
                Some((at, errno)) if at == index => Err(io::Error::from_raw_os_error(errno)),
                _ => Ok(()),
            }
        })
    }

    /// Arms the seam on this thread: step number `at` fails with `errno`; clears the record.
    pub(crate) fn arm(at: Option<usize>, errno: i32) {
        PLAN.with(|p| *p.borrow_mut() = Plan { fail_at: at.map(|a| (a, errno)), seen: Vec::new() });
    }

    /// The steps run on this thread since the last `arm`.
    pub(crate) fn seen() -> Vec<Step> {
        PLAN.with(|p| p.borrow().seen.clone())
    }
}
