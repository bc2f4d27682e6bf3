"""Statistics shared by evaluation, monitoring and the Spark workers: metrics, fairness,
baseline profiles and drift. numpy (and scipy for p-values); no AWS, no scikit-learn.
"""
