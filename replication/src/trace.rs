
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_go_to_the_trace_file_with_their_generation() {
        let path = std::env::temp_dir().join(format!("mcs-trace-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        trace_to(Some(&path)).unwrap();
        let mut marks = Marks::new();
        marks.mark("t.first");
        marks.mark("t.second");
        marks.flush(7);
        stage("t.third", 8);
        trace_to(None).unwrap();
        stage("t.after", 9);
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
        let stages: Vec<(&str, &str)> = lines.iter().map(|f| (f[2], f[3])).collect();
        assert_eq!(stages, [("t.first", "7"), ("t.second", "7"), ("t.third", "8")]);
        let pid = std::process::id().to_string();
        assert!(lines.iter().all(|f| f.len() == 4 && f[1] == pid), "{text}");
        let times: Vec<u128> = lines.iter().map(|f| f[0].parse().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    }
}
