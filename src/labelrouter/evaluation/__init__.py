"""How well labelrouter does on labeled mail: the `eval` protocols, the prequential stream and its drift
scenarios, the TF-IDF + SVM baseline, the metrics and the train/validation splits the training graph uses."""
