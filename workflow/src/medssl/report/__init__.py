"""Reports from the per-fit records (rule file report.smk).

    tables       metrics.csv, summary.csv, the label-efficiency and paired SSL-vs-DL tables
    statistics   Holm correction of the paired tests, bootstrap intervals over test images
    health       "is the SSL working?": collapse signals and the gap to the backbone it started from
    compare      the method comparison of Chattopadhyay et al. (table and curves)
    figures      the papers' figures: balanced accuracy against labels, confusion matrices
"""
